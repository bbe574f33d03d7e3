package tcpserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// bucketAccounts holds registered names, by lower-case name; each value
// is an accountRecord's JSON.
const bucketAccounts = "accounts"

// Bounds on account passwords. bcrypt reads 72 bytes at most; a longer
// password would be cut there without a word, so it is refused.
const (
	minAccountPassword = 8
	maxAccountPassword = 72
)

// Wrong account passwords, and registrations, are limited per address:
// accountTries in accountEvery.
const (
	accountTries = 5
	accountEvery = time.Minute
)

// bcryptCost is the cost passwords are hashed at: about 50 ms of one
// core each, in the reader of the member who asked.
const bcryptCost = bcrypt.DefaultCost

// ErrNickRegistered refuses a registered name to anyone who has not
// proved it is theirs.
var ErrNickRegistered = errors.New("is registered; if it is yours: /nick NAME PASSWORD")

// accountRecord is a registered name: the name as registered and the
// bcrypt hash of its password. The password itself is never kept nor
// logged.
type accountRecord struct {
	Name string    `json:"name"`
	Hash []byte    `json:"hash"`
	At   time.Time `json:"at"`
	// Keys are the fingerprints of the SSH keys that own the name: a
	// member who logs in over SSH with one, as the name, has it without
	// a password (see keyOwns). /register from an SSH session records
	// its key.
	Keys []string `json:"keys,omitempty"`
}

// maxAccountKeys bounds the keys a record may name, and maxKeyLen each
// fingerprint ("SHA256:" and 43 characters of base64).
const (
	maxAccountKeys = 8
	maxKeyLen      = 100
)

// keyOwns reports whether the SSH key fingerprint key owns the registered
// name name (any case), and returns the name as registered.
func (m *Moderation) keyOwns(name, key string) (string, bool) {
	if key == "" || name == "" {
		return "", false
	}
	rec, ok := m.account(name)
	if !ok || !slices.Contains(rec.Keys, key) {
		return "", false
	}
	return rec.Name, true
}

// applyAccount takes a registered name, or its end, into force: into
// the hub's name book, which then refuses it to anyone else (see
// nameBook.check), and into the set that marks registered members.
func (m *Moderation) applyAccount(key string, value []byte) error {
	var rec accountRecord
	if value != nil {
		if err := json.Unmarshal(value, &rec); err != nil {
			return err
		}
		if !strings.EqualFold(rec.Name, key) || ValidNick(rec.Name) != nil {
			return fmt.Errorf("name %q under key %q", rec.Name, key)
		}
		if len(rec.Keys) > maxAccountKeys || slices.ContainsFunc(rec.Keys, func(k string) bool { return k == "" || len(k) > maxKeyLen }) {
			return fmt.Errorf("name %q: %d keys, or one empty or too long", rec.Name, len(rec.Keys))
		}
	}
	m.mu.Lock()
	if value == nil {
		delete(m.accounts, key)
	} else {
		m.accounts[key] = rec
	}
	reg := make(map[string]bool, len(m.accounts))
	for k := range m.accounts {
		reg[k] = true
	}
	m.registered.Store(&reg)
	m.mu.Unlock()

	h := m.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if value == nil {
		h.names.disown(key)
		for _, c := range h.names.byFold {
			if strings.EqualFold(c.account, key) {
				c.account = ""
			}
		}
	} else {
		h.names.own(rec.Name)
	}
	return nil
}

// isRegistered reports whether name (any case) is registered.
func (m *Moderation) isRegistered(name string) bool {
	reg := m.registered.Load()
	return reg != nil && (*reg)[strings.ToLower(name)]
}

// registeredAmong returns those of names that are registered, in their
// order; nil if none is.
func (m *Moderation) registeredAmong(names []string) []string {
	reg := m.registered.Load()
	if reg == nil || len(*reg) == 0 {
		return nil
	}
	var out []string
	for _, n := range names {
		if (*reg)[strings.ToLower(n)] {
			out = append(out, n)
		}
	}
	return out
}

// account returns the record of name, if it is registered.
func (m *Moderation) account(name string) (accountRecord, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	rec, ok := m.accounts[strings.ToLower(name)]
	return rec, ok
}

// mayTry reports whether c's address may try a password now, and if not
// tells it when it may.
func (m *Moderation) mayTry(c *Client) bool {
	if wait := m.accountFails.wait(c.source, time.Now()); wait > 0 {
		c.errorf("too many tries from your address; try again in %d s", int(math.Ceil(wait.Seconds())))
		return false
	}
	return true
}

// failed counts and logs a wrong password for name.
func (m *Moderation) failed(c *Client, name, what string) {
	m.accountFails.fail(c.source, time.Now())
	m.passwordFailures.Add(1)
	m.hub.logs.Log(slog.LevelWarn, "wrong account passwords", "wrong account password",
		"command", what, "account", name, "name", c.Name(), "addr", c.addr, "transport", c.transport)
	c.errorf("wrong password for %s", name)
}

// checkPassword says what is wrong with a new password.
func checkPassword(p string) error {
	switch {
	case len(p) < minAccountPassword:
		return fmt.Errorf("a password needs at least %d bytes", minAccountPassword)
	case len(p) > maxAccountPassword:
		return fmt.Errorf("a password has at most %d bytes", maxAccountPassword)
	case strings.ContainsAny(p, " \t"):
		return errors.New("a password has no spaces")
	}
	return nil
}

// register is /register PASSWORD: the member's name becomes registered.
func (m *Moderation) register(c *Client, arg string) {
	if arg == "" {
		c.errorf("usage: /register PASSWORD (then /nick %s PASSWORD takes the name back whenever you come)", c.Name())
		return
	}
	if err := checkPassword(arg); err != nil {
		c.errorf("%v", err)
		return
	}
	name := c.Name()
	if strings.HasPrefix(lookKey(name, lookLoose), guestPrefix) {
		c.errorf("guest names cannot be registered; take a name with /nick NAME first")
		return
	}
	if _, ok := m.account(name); ok {
		c.errorf("%s is registered already", name)
		return
	}
	if !m.mayTry(c) {
		return
	}
	// Registrations count against the same tries: names are not to be
	// hoarded by the hundred.
	m.accountFails.fail(c.source, time.Now())
	hash, err := bcrypt.GenerateFromPassword([]byte(arg), m.cost)
	if err != nil {
		c.errorf("the password could not be hashed: %v", err)
		return
	}
	rec := accountRecord{Name: name, Hash: hash, At: time.Now()}
	if c.key != "" {
		rec.Keys = []string{c.key}
	}
	m.setAccount(c, name)
	if err := m.save(bucketAccounts, strings.ToLower(name), rec); err != nil {
		m.setAccount(c, "")
		c.errorf("the registration %v", err)
		return
	}
	m.hub.log.Info("name registered", "name", name, "addr", c.addr, "key", c.key)
	text := "your name " + name + " is registered: nobody else may take it; to take it back when you come, /nick " + name + " PASSWORD"
	if c.key != "" {
		text += ", or log in over SSH as " + name + " with this key (" + c.key + "): it owns the name"
	}
	c.send(KindSystem, text)
}

// setAccount records, under the hub's lock, the registered name c proved
// is its own ("" for none).
func (m *Moderation) setAccount(c *Client, name string) {
	m.hub.mu.Lock()
	c.account = name
	m.hub.mu.Unlock()
}

// accountOf returns the registered name c proved is its own, "" for none.
func (m *Moderation) accountOf(c *Client) string {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	return c.account
}

// identify is /identify NAME PASSWORD, and /nick NAME PASSWORD: the
// member proves a registered name is its own, and takes it.
func (m *Moderation) identify(c *Client, arg string) {
	name, pass := cutWord(arg)
	if name == "" || pass == "" {
		c.errorf("usage: /identify NAME PASSWORD")
		return
	}
	if err := ValidNick(name); err != nil {
		c.errorf("%v", err)
		return
	}
	rec, ok := m.account(name)
	if !ok {
		c.errorf("%s is not registered; /nick %s, then /register PASSWORD", name, name)
		return
	}
	if !m.mayTry(c) {
		return
	}
	if bcrypt.CompareHashAndPassword(rec.Hash, []byte(pass)) != nil {
		m.failed(c, rec.Name, "identify")
		return
	}
	if c.verified && c.Name() != rec.Name {
		c.errorf("your name is the one you are signed in with; it cannot be changed here")
		return
	}
	m.setAccount(c, rec.Name)
	m.hub.log.Info("name identified", "name", rec.Name, "addr", c.addr)
	if c.Name() != rec.Name {
		now := time.Now()
		if !c.mayChange(now) {
			return
		}
		if err := c.renameTo(rec.Name); err != nil {
			c.errorf("you are identified as %s, but %v", rec.Name, err)
			return
		}
		c.changed(now)
	}
	c.send(KindSystem, "you are identified as "+rec.Name)
}

// changePassword is /password OLD NEW.
func (m *Moderation) changePassword(c *Client, arg string) {
	old, next := cutWord(arg)
	if old == "" || next == "" || strings.ContainsRune(next, ' ') {
		c.errorf("usage: /password OLD NEW")
		return
	}
	name := m.accountOf(c)
	if name == "" {
		c.errorf("you have no registered name to change the password of; /register PASSWORD first")
		return
	}
	if err := checkPassword(next); err != nil {
		c.errorf("%v", err)
		return
	}
	rec, ok := m.proven(c, name, old, "password")
	if !ok {
		return
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(next), m.cost)
	if err != nil {
		c.errorf("the password could not be hashed: %v", err)
		return
	}
	rec.Hash = hash
	if err := m.save(bucketAccounts, strings.ToLower(name), rec); err != nil {
		c.errorf("the new password %v", err)
		return
	}
	m.hub.log.Info("password changed", "name", name, "addr", c.addr)
	c.send(KindSystem, "the password of "+name+" is changed")
}

// proven returns the account of name, c's own, if password is its
// (within the tries c's address has; a wrong one counts as what), and
// tells c why not otherwise.
func (m *Moderation) proven(c *Client, name, password, what string) (accountRecord, bool) {
	rec, ok := m.account(name)
	if !ok {
		c.errorf("%s is no longer registered", name)
		return rec, false
	}
	if !m.mayTry(c) {
		return rec, false
	}
	if bcrypt.CompareHashAndPassword(rec.Hash, []byte(password)) != nil {
		m.failed(c, name, what)
		return rec, false
	}
	return rec, true
}

// unregister is /unregister PASSWORD: the name is anyone's again.
func (m *Moderation) unregister(c *Client, arg string) {
	if arg == "" {
		c.errorf("usage: /unregister PASSWORD")
		return
	}
	name := m.accountOf(c)
	if name == "" {
		c.errorf("you have no registered name; /identify NAME PASSWORD first")
		return
	}
	if _, ok := m.proven(c, name, arg, "unregister"); !ok {
		return
	}
	if err := m.remove(bucketAccounts, strings.ToLower(name)); err != nil {
		c.errorf("the unregistration %v", err)
		return
	}
	m.hub.log.Info("name unregistered", "name", name, "addr", c.addr)
	c.send(KindSystem, name+" is no longer registered")
}

// registeredCopy returns the set of registered names, for tests.
func (m *Moderation) registeredCopy() map[string]bool {
	reg := m.registered.Load()
	if reg == nil {
		return nil
	}
	return maps.Clone(*reg)
}
