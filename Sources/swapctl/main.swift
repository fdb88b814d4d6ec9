print("swapctl")
