print("station-sim")
