package telemetry

// Family is a command family: the kind of work an operation does, the same
// for every protocol so that HTTP and Redis figures compare.
type Family uint8

const (
	// Read is a point read: HTTP GET of a key; Redis GET, MGET, EXISTS,
	// STRLEN, TTL and the like.
	Read Family = iota
	// Write changes keys: HTTP PUT/POST/DELETE of a key and batches;
	// Redis SET, DEL, INCR, EXPIRE, MSET and the like.
	Write
	// Scan walks keys in order: HTTP GET /api/v1/kv; Redis SCAN and KEYS.
	Scan
	// Txn is an atomic multi-key exchange: HTTP POST /api/v1/txn; Redis
	// EXEC (MULTI and the queued commands are not counted on their own).
	Txn
	// NumFamilies is the number of families, for arrays indexed by Family.
	NumFamilies = 4
)

// familyNames are the names the dashboard endpoint uses, indexed by Family.
var familyNames = [NumFamilies]string{"read", "write", "scan", "txn"}

// String returns the family's lower-case name, as the dashboard shows it.
func (f Family) String() string {
	if int(f) < len(familyNames) {
		return familyNames[f]
	}
	return "unknown"
}
