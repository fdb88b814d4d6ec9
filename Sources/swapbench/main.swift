print("swapbench")
