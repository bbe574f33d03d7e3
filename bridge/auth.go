package bridge

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"chatbridge/tcpserver"
)

// A site that embeds the chat signs its readers in: it gives the page a
// JWT naming the reader, signed with the secret it shares with this
// server (Config.AuthSecret), and the page opens /ws?token=JWT. The
// server checks it here and hands the hub the name it gives, verified
// (see tcpserver/verified.go). A token that does not hold gets the
// connection closed with 1008 and why, never a guest name: the reader
// would chat as someone it did not mean to be.
//
// Only HS256 is taken: a token of any other algorithm, "none" above
// all, is refused, and so is one with no exp, one that expired (a few
// seconds of clock skew allowed), one not valid yet (nbf) and one valid
// for more than MaxTokenLife. The token is in the request's URL, so it
// is never logged: the bridge logs no URL, and the page takes it from
// its own URL's fragment, which no request and no Referer carries.

// Bounds on sign-in tokens.
const (
	MinAuthSecret = 32              // bytes of Config.AuthSecret: an HS256 key of less is guessable offline from one token
	maxToken      = 4096            // bytes of a token
	tokenLeeway   = 5 * time.Second // clock skew allowed on exp, nbf and iat
	MaxTokenLife  = 24 * time.Hour  // the longest a token may be valid for, from when it was issued or from now
	tokenAlg      = "HS256"         // the only algorithm taken
)

// errAuth refuses a token: its text, after "sign-in: ", says why.
var errAuth = errors.New("sign-in")

// tokenClaims are the claims the server reads: the name (or else the
// subject) and the registered time claims.
type tokenClaims struct {
	Name string `json:"name"`
	jwt.RegisteredClaims
}

// authenticate reads the sign-in token of a /ws request, if it has one,
// into info: the name it vouches for, verified. The error's text is fit
// for a close frame.
func (s *Server) authenticate(q url.Values, info *tcpserver.ConnectInfo) error {
	tokens, ok := q["token"]
	if !ok {
		return nil
	}
	if len(s.cfg.AuthSecret) == 0 {
		return fmt.Errorf("%w: this server takes no sign-in tokens (it was started without --auth-secret)", errAuth)
	}
	if len(tokens) != 1 {
		return authError("one token, not several") // no count: the log groups refusals by their text
	}
	name, err := verifyToken(s.cfg.AuthSecret, tokens[0], time.Now())
	if err != nil {
		return err
	}
	info.Nick, info.Verified = name, true
	return nil
}

func authError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format+"; reload the page to sign in again", append([]any{errAuth}, args...)...)
}

// verifyToken checks token against secret at now and returns the name it
// gives: its name claim, or its sub. Whether the name may be had is the
// hub's to say.
func verifyToken(secret []byte, token string, now time.Time) (string, error) {
	switch {
	case token == "":
		return "", authError("the token is empty")
	case len(token) > maxToken:
		return "", authError("the token is too long (at most %d bytes)", maxToken)
	}
	var claims tokenClaims
	tok, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{tokenAlg}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		if tok != nil && tok.Header["alg"] != tokenAlg && !errors.Is(err, jwt.ErrTokenMalformed) {
			return "", authError("the token is not signed with %s", tokenAlg)
		}
		return "", authError("%s", tokenWhy(err))
	}
	exp := claims.ExpiresAt.Time
	if exp.Sub(now) > MaxTokenLife+tokenLeeway {
		return "", authError("the token is valid for more than %s", humanHours(MaxTokenLife))
	}
	if claims.IssuedAt != nil && exp.Sub(claims.IssuedAt.Time) > MaxTokenLife {
		return "", authError("the token is valid for more than %s", humanHours(MaxTokenLife))
	}
	name := claims.Name
	if name == "" {
		name = claims.Subject
	}
	if name == "" {
		return "", authError("the token has no name (nor sub) claim")
	}
	return name, nil
}

// tokenWhy says in a few words what is wrong with a token the library
// refused.
func tokenWhy(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the token was issued in the future"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the token has no exp claim"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "the token's signature is wrong"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is malformed"
	default:
		return "the token's claims are malformed"
	}
}

func humanHours(d time.Duration) string { return fmt.Sprintf("%d h", int(d.Hours())) }

// connect joins the member to the hub, unless its token was refused.
func (s *Server) connect(c *wsConn, info tcpserver.ConnectInfo, authErr error) (*tcpserver.Client, error) {
	if authErr != nil {
		s.authRefused.Add(1)
		return nil, authErr
	}
	return s.hub.Connect(c, info)
}
