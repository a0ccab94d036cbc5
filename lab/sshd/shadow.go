package sshd

import (
	"crypto/rand"
	"crypto/sha512"
	"fmt"
	"strings"
	"time"
)

// writeShadow writes a shadow(5) file holding one entry: user with the
// SHA-512 crypt hash of password, changed today (a zero change date would
// make sshd demand a new password), never expiring. It is what the lab's
// sshd sees as /etc/shadow when password login is on.
func writeShadow(path, user, password string) error {
	salt, err := cryptSalt()
	if err != nil {
		return err
	}
	day := time.Now().Unix() / 86400
	line := fmt.Sprintf("%s:%s:%d:0:99999:7:::\n", user, sha512Crypt(password, salt, 5000), day)
	return writeFile(path, []byte(line))
}

// cryptAlphabet is crypt(3)'s base-64 alphabet.
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// cryptSalt returns 16 random characters of cryptAlphabet.
func cryptSalt() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = cryptAlphabet[int(b[i])%len(cryptAlphabet)]
	}
	return string(b), nil
}

// sha512Crypt computes the "$6$" password hash that glibc's crypt(3)
// verifies, following Ulrich Drepper's public SHA-crypt specification: the
// lab needs it to give its sshd a password without touching the machine's
// accounts, and Go's standard library has no crypt. salt is at most 16
// characters; rounds other than 5000 are written as "rounds=N$".
func sha512Crypt(password, salt string, rounds int) string {
	if len(salt) > 16 {
		salt = salt[:16]
	}
	pw, sl := []byte(password), []byte(salt)

	// Digest B: password, salt, password.
	hb := sha512.New()
	hb.Write(pw)
	hb.Write(sl)
	hb.Write(pw)
	b := hb.Sum(nil)

	// Digest A: password, salt, B repeated to the password's length, then
	// per bit of that length (lowest first) B for a 1, the password for a 0.
	ha := sha512.New()
	ha.Write(pw)
	ha.Write(sl)
	ha.Write(repeatTo(b, len(pw)))
	for n := len(pw); n > 0; n >>= 1 {
		if n&1 == 1 {
			ha.Write(b)
		} else {
			ha.Write(pw)
		}
	}
	a := ha.Sum(nil)

	// P: digest of the password repeated len(pw) times, cut to len(pw).
	hp := sha512.New()
	for range len(pw) {
		hp.Write(pw)
	}
	p := repeatTo(hp.Sum(nil), len(pw))

	// S: digest of the salt repeated 16+A[0] times, cut to len(salt).
	hs := sha512.New()
	for range 16 + int(a[0]) {
		hs.Write(sl)
	}
	sb := repeatTo(hs.Sum(nil), len(sl))

	// The rounds.
	c := a
	for i := range rounds {
		h := sha512.New()
		if i%2 == 1 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sb)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i%2 == 1 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(nil)
	}

	// Output: the specification's byte order, 4 characters per 3 bytes,
	// lowest 6 bits first; the last byte alone gives 2 characters.
	var out strings.Builder
	out.WriteString("$6$")
	if rounds != 5000 {
		fmt.Fprintf(&out, "rounds=%d$", rounds)
	}
	out.WriteString(salt)
	out.WriteByte('$')
	enc := func(b2, b1, b0 byte, n int) {
		w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
		for range n {
			out.WriteByte(cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	for i := range 21 {
		// Triples (0,21,42), (22,43,1), (44,2,23), (3,24,45), …
		x, y, z := i, i+21, i+42
		switch i % 3 {
		case 1:
			x, y, z = i+21, i+42, i
		case 2:
			x, y, z = i+42, i, i+21
		}
		enc(c[x], c[y], c[z], 4)
	}
	enc(0, 0, c[63], 2)
	return out.String()
}

// repeatTo returns b repeated and cut to n bytes.
func repeatTo(b []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, b[:min(len(b), n-len(out))]...)
	}
	return out
}
