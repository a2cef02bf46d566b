import Testing
@Test func peerNetworkPlaceholder() {}
