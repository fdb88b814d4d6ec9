print("swapgate")
