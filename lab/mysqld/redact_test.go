package mysqld

import "testing"

func TestRedactHidesPasswordLiterals(t *testing.T) {
	for in, want := range map[string]string{
		"CREATE USER 'a'@'%' IDENTIFIED BY 's3cret'":                            "CREATE USER 'a'@'%' IDENTIFIED BY '***'",
		"ALTER USER x IDENTIFIED WITH caching_sha2_password BY \"it''s\"":       "ALTER USER x IDENTIFIED WITH caching_sha2_password BY '***'",
		"CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = 'p\\'w', SOURCE_PORT=1": "CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = '***', SOURCE_PORT=1",
		"SELECT 'IDENTIFIED'": "SELECT 'IDENTIFIED'",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
