"""Control workload: a script that imports nothing. What every mode costs
before a program does anything (interpreter start, site, the activation)."""
