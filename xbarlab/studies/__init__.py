"""Studies that train networks (`xbarlab.nn`, torch) and program them onto simulated chips
(`xbarlab.network`): above both in the dependency order, imported only by the CLI."""
