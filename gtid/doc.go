// Package gtid implements MySQL GTID sets: parsing, set algebra and MySQL's
// canonical text form.
//
// A GTID (global transaction identifier) names one transaction as
// "source_uuid:number" or, since MySQL 8.3, "source_uuid:tag:number". A GTID
// set is written as a comma-separated list of UUIDs, each followed by
// colon-separated intervals ("1-5" or "7") and optionally tags that apply to
// the intervals after them:
//
//	3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:batch:1-3,
//	4d22ab58-82db-22f2-af44-d91bbb53a673:1-100
//
// Semantics follow the server:
//
//   - A set is a plain mathematical set of (UUID, tag, number) triples. The
//     untagged GTIDs of a UUID and its tagged GTIDs are distinct transactions:
//     "u:5" and "u:t:5" are different, and subtracting one never removes the
//     other.
//   - UUIDs compare by their 16 bytes (which is also the order of their
//     lower-case text), tags by their bytes, the untagged part first. That is
//     the order in which MySQL prints a set.
//   - Transaction numbers run from 1 to MaxGNO (2^63-2).
//   - Set.String gives exactly the text MySQL 9.7 returns from GTID_SUBTRACT
//     and friends (and shows in gtid_executed): lower-case UUIDs separated by
//     ",\n", merged intervals, tags lower case. Parse(s).String() therefore
//     normalises any spelling of a set to the server's.
//   - Set.Subtract is GTID_SUBTRACT(a, b); a.Contains(b) is GTID_SUBSET(b, a);
//     Set.Union is what the server computes for the concatenation "a,b".
//
// A Set is an immutable value: operations return new sets and the zero value
// is the empty set. Internally a set is a sorted slice of (UUID, tag) entries
// over one sorted slice of merged intervals, so every operation is a linear
// merge and allocates at most twice. The string helpers (SubtractStrings,
// ContainsStrings, …) wrap Parse and the set operations for the expression
// language, which works on text.
package gtid
