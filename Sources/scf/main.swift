print("scf")
