"""A STAND-IN for the Intel Tofino SDE (and Stratum), for the local testbed: see README.md."""
