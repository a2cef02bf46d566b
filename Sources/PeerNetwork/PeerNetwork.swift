// PeerNetwork: the validator-to-validator transport.
//
// What it does. It carries opaque consensus frames (byte arrays) between the validators listed
// in genesis, and nothing else: it does not know PBFT, does not retransmit, and does not order
// frames across peers. Frames from one peer arrive in the order that peer sent them, as long as
// the connection lasts; frames can be lost when a connection breaks or a queue overflows, which
// consensus tolerates by design.
//
// Layers, from the socket up, for every connection:
//   1. TCP, with TCP_NODELAY and keepalive.
//   2. TLS 1.3 with mutual authentication. Each node has a P-256 certificate issued by the
//      consortium's own CA (`ConsortiumCA`), whose common name is the validator's name in
//      genesis. Each side trusts only the consortium CA and requires the peer's certificate;
//      hostnames are not verified (identity is the name in the certificate, checked in layer 4,
//      not the address a node is reached at). A client with no certificate, a self-signed one,
//      or one from another CA never gets past this layer.
//   3. Framing (`FrameDecoder`): 4-byte big-endian length + payload, capped at
//      `maxFrameLength` (8 MiB by default), and at 4 KiB for the peer's three handshake frames.
//      A larger announced length closes the connection before any payload is buffered.
//   4. The handshake (`HandshakeProtocol`, `HandshakeStateMachine`): version, crypto suite,
//      chain id, genesis hash, the claimed validator index, the certificate's common name
//      against genesis, and a signature with the validator's consensus key over both sides'
//      nonces. Refusals carry a code and a sentence, are sent to the peer and reported locally.
//   5. Consensus frames, delivered to `onFrame` tagged with the authenticated `ValidatorIndex`.
//      Empty frames are keepalives.
//
// Why channel handlers and not NIOAsyncChannel: consensus sends many small frames; measured on
// this machine, plain handlers did 100k+ round trips a second and NIOAsyncChannel
// request/response 5-10x fewer. So `send` is synchronous (a lock and a queue append), frames are
// coalesced into one write per event-loop turn, and `onFrame` is called on the event loop
// without an async hop. The node shell decides how to hand frames to its own tasks.
//
// Connection rule: the validator with the higher index dials the lower one, so each pair has
// exactly one connection and both sides agree who redials after a failure. See `PeerTransport`.
