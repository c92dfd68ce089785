"""Stage 5, verify: what an image and a booted node must be (the contract),
the testinfra specs, and the runner that checks a live host."""
