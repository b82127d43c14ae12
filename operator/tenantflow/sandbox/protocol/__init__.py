"""What both sides of the sandbox boundary speak: the operator's signed requests and the
runner's answers (`auth`, `payload`, `vouch`), and the frames between the runner and its
zygote (`frames`: the operator checks a lost worker's cause and steps by them again).
It imports neither side (.importlinter)."""
