"""Trial campaigns: Hydra entry point, trial runner, managed policy servers, progress."""
