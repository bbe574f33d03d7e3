package bridge

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerifyToken: whatever a client puts in ?token=, verifyToken
// returns at once, without a panic, a name or an error fit for a close
// frame; and it takes nothing it was not given signed with the secret:
// the same token with its signature changed is refused.
func FuzzVerifyToken(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	signed := func(c jwt.MapClaims) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testAuthSecret)
		return s
	}
	f.Add(signed(jwt.MapClaims{"name": "alice", "exp": now.Add(time.Hour).Unix()}))
	f.Add(signed(jwt.MapClaims{"sub": "bob", "exp": now.Add(time.Hour).Unix(), "nbf": now.Unix()}))
	f.Add(signed(jwt.MapClaims{"name": []int{1}, "exp": "soon"}))
	f.Add("eyJhbGciOiJub25lIn0.eyJuYW1lIjoiYSJ9.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		name, err := verifyToken(testAuthSecret, token, now)
		if err != nil {
			if !errors.Is(err, errAuth) || !strings.HasPrefix(err.Error(), "sign-in: ") {
				t.Fatalf("error %q", err)
			}
			return
		}
		if name == "" {
			t.Fatal("taken with no name")
		}
		// The signature's first character holds six bits of it (its
		// last may hold bits a decoder ignores).
		i := strings.LastIndexByte(token, '.') + 1
		if i == len(token) {
			t.Fatalf("%q taken with no signature", token)
		}
		other := byte('A')
		if token[i] == 'A' {
			other = 'B'
		}
		if _, err := verifyToken(testAuthSecret, token[:i]+string(other)+token[i+1:], now); err == nil {
			t.Fatalf("%q taken with its signature changed", token)
		}
	})
}
