"""How work fits the hardware: one actor's memory (footprint), actors per GPU (packing)
and the preflight checks (doctor)."""
