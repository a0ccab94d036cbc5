package dbscale

import "testing"

// BenchmarkShowDataservers measures one `dbscale show dataservers` over the
// MySQL protocol with three fake nodes probed in parallel.
func BenchmarkShowDataservers(b *testing.B) {
	fc := newFakeCluster(b, 1, v97, nil)
	db := fc.db("admin", false)
	b.ResetTimer()
	for b.Loop() {
		rows, err := db.Query("dbscale show dataservers")
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
	}
}

// BenchmarkForwardSelect measures a statement forwarded to a fake master.
func BenchmarkForwardSelect(b *testing.B) {
	fc := newFakeCluster(b, 1, v97, nil)
	db := fc.db("app", false)
	b.ResetTimer()
	for b.Loop() {
		var v string
		if err := db.QueryRow("select 1").Scan(&v); err != nil {
			b.Fatal(err)
		}
	}
}
