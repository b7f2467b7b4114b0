"""Classical no-reference metrics (numpy/scipy only): NIQE, BRISQUE, PIQE."""
