package storage

// RunConformance and ConformanceConfig let engines outside this package
// (the replicated cluster engine) run the one conformance suite from an
// external test package.
var (
	RunConformance    = runConformance
	ConformanceConfig = conformanceConfig
)
