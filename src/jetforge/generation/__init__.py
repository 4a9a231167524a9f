"""Event generation: hard process (Pythia or LHE), re-simulated shower variants."""
