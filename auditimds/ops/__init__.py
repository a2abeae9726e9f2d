"""Operating the agent: `doctor` (can detection work on this host?) and `status`/health (what is it doing?)."""
