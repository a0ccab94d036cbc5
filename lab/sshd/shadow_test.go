package sshd

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSHA512Crypt checks the hash against the specification's first test
// vector and, when openssl is installed, against `openssl passwd -6` for a
// few passwords of lengths around the 64-byte digest size.
func TestSHA512Crypt(t *testing.T) {
	const want = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
	if got := sha512Crypt("Hello world!", "saltstring", 5000); got != want {
		t.Errorf("spec vector: got %s", got)
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl not installed: only the specification's vector checked")
		return
	}
	for _, pw := range []string{"a", strings.Repeat("x", 63), strings.Repeat("y", 64), strings.Repeat("z", 130), "pässwörd with spaces"} {
		salt, err := cryptSalt()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(openssl, "passwd", "-6", "-salt", salt, "-stdin")
		cmd.Stdin = strings.NewReader(pw + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl: %v", err)
		}
		if got := sha512Crypt(pw, salt, 5000); got != strings.TrimSpace(string(out)) {
			t.Errorf("password of %d bytes: got %s, openssl %s", len(pw), got, out)
		}
	}
}
