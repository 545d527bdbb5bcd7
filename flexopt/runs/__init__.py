"""Run orchestration and storage: one scheduling run from portfolio to files, versioned run folders, intraday
starts."""
