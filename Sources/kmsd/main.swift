print("kmsd")
