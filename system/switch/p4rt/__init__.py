"""P4Runtime server of the emulated switch target (see server.py; run with `python -m system.switch.p4rt`)."""
