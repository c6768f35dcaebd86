"""Check a student's own BPTT (code or arrays) against the project's reference. Imports nothing here: the child
process that runs the student's code imports only bptt.check.child and bptt.check.shapes (NumPy, no torch)."""
