package tcpserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The buckets of the [StateStore] that moderation keeps its records in.
// Each value is a record's JSON; see banRecord, muteRecord, topicRecord
// and modeRecord.
const (
	bucketBans   = "bans"   // by banKey(mask)
	bucketMutes  = "mutes"  // by lower-case name
	bucketTopics = "topics" // by room
	bucketModes  = "modes"  // by room
)

// Bounds on what operators may give moderation commands.
const (
	maxReason   = 200  // bytes of a kick, ban or mute reason
	maxTopic    = 300  // bytes of a topic (Ergo's default is 390)
	maxSlow     = 3600 // seconds between lines in slow mode
	maxBans     = 1000 // bans at once
	maxMuteBans = 1000 // mutes at once
	maxVoiced   = 100  // voiced members of one room
	maxDuration = 10 * 365 * 24 * time.Hour
)

// Wrong operator passwords are limited per address: opTries in opEvery.
const (
	opTries = 5
	opEvery = time.Minute
)

// storeTimeout bounds one write to the StateStore.
const storeTimeout = 5 * time.Second

// ErrBanned is what [Hub.Connect] returns, wrapped in a [BanError], for
// a member whose address is banned.
var ErrBanned = errors.New("banned")

// A BanError says why a connection was refused for a ban, and for how
// much longer; its text is fit to show the refused user.
type BanError struct {
	Reason string
	Left   time.Duration // 0: permanent
}

func (e *BanError) Error() string {
	s := "you are banned from this server"
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Left > 0 {
		return s + "; " + humanDuration(e.Left) + " left"
	}
	return s + ", permanently"
}

func (e *BanError) Unwrap() error { return ErrBanned }

// banRecord is one ban: every address in Mask is refused at connect
// until Until (zero: never ends).
type banRecord struct {
	Mask   string    `json:"mask"`           // a netip.Prefix, masked
	Name   string    `json:"name,omitempty"` // the member banned by name, if it was
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Until  time.Time `json:"until,omitzero"`

	prefix netip.Prefix // Mask, parsed
}

// muteRecord is one mute: what the member called Name, or any member from
// Source (its address as limits count it), says to a room is refused
// until Until (zero: until unmuted). The address follows a muted member
// through renames and reconnections.
type muteRecord struct {
	Name   string    `json:"name"`
	Source string    `json:"source,omitempty"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Until  time.Time `json:"until,omitzero"`
}

// topicRecord is a room's topic.
type topicRecord struct {
	Text string    `json:"text"`
	By   string    `json:"by"`
	At   time.Time `json:"at"`
}

// modeRecord is a room's modes: moderated (only operators and voiced
// members speak), slow (non-operators say a line every Slow seconds at
// most), and who is voiced, by lower-case name.
type modeRecord struct {
	Moderated bool     `json:"moderated,omitempty"`
	Slow      int      `json:"slow,omitempty"`
	Voice     []string `json:"voice,omitempty"`

	// The last change, told to the room on every node (see applyMode).
	By   string    `json:"by,omitempty"`
	Note string    `json:"note,omitempty"`
	At   time.Time `json:"at,omitzero"`
}

// opHelpText is what /help adds for an operator.
const opHelpText = `Operator commands (DURATION: 30s, 10m, 2h, 7d; none for no end):
  /kick NAME [REASON]              disconnect NAME, the reason shown to the room
  /mute NAME [DURATION] [REASON]   NAME reads but may not speak; /unmute NAME
  /topic TEXT                      set this room's topic; /topic - clears it
  /ban NAME|ADDRESS|CIDR [DURATION] [REASON]
                                   refuse an address (NAME's) at connect, and disconnect it
  /unban ADDRESS|CIDR|NAME, /bans  lift a ban, list them
  /moderate on|off                 only operators and voiced members speak in this room
  /voice NAME, /devoice NAME       let NAME speak in a moderated room, or not
  /slow SECONDS|off                members say a line every SECONDS at most here
  /delete last NAME, /delete ID    remove NAME's last line (or the line ID) from this room, screens included
  /purge NAME                      remove all of NAME's lines from this room
  /whois NAME                      shows the address too
  /deop                            stop being an operator`

// The actions counted in [Stats.Moderation], one per command that
// changed something.
var modActions = []string{"op", "deop", "kick", "ban", "unban", "mute", "unmute", "topic", "moderate", "voice", "slow", "delete", "purge"}

// Moderation is what keeps a public room clean: operators (who proved the
// operator password), and the bans, mutes, topics and room modes they
// set. Its records live in a [StateStore], so that with --data they
// survive a restart and with --nats every node applies them: a change
// made here is written to the store and applied at once, and a change
// made on another node comes back through the store's Watch (see Start).
// Applying a record twice does what applying it once does.
//
// The hub calls it at a few points (Connect, saying a line, the join
// welcome, commands it does not know); the rest is here.
type Moderation struct {
	hub      *Hub
	state    StateStore
	password [sha256.Size]byte // of HubConfig.OpPassword; compared in constant time
	hasPass  bool

	opFails      *attempts // wrong operator passwords, by address
	accountFails *attempts // wrong account passwords and registrations, by address
	cost         int       // bcrypt's cost for new passwords: bcryptCost (tests lower it)

	mu     sync.RWMutex
	bans   map[string]banRecord   // by banKey
	mutes  map[string]muteRecord  // by lower-case name
	topics map[string]topicRecord // by room
	modes  map[string]modeRecord  // by room

	deletions map[string]time.Time // deletion records seen, and when each ends (removal.go)
	orders    map[string]time.Time // orders seen, and when each ends (orders.go)

	accounts   map[string]accountRecord        // registered names, by lower-case name (accounts.go)
	registered atomic.Pointer[map[string]bool] // accounts' keys, for presence to read without a lock

	// active is how many mutes and room modes there are: while there
	// are none, a line said asks nothing more.
	active atomic.Int32
	// speech is who and where a mute or a mode might stop a line, made
	// anew at each change of them: a line said by anyone else, anywhere
	// else, asks it alone, with no lock and no scan of the mutes.
	speech atomic.Pointer[speechRules]

	actions          map[string]*atomic.Uint64 // by modActions; the map is never changed
	opFailures       atomic.Uint64
	passwordFailures atomic.Uint64
	banned           atomic.Uint64
}

func newModeration(h *Hub, state StateStore, password string) *Moderation {
	if state == nil {
		state = NewMemState()
	}
	m := &Moderation{
		hub:     h,
		state:   state,
		opFails: newAttempts(opTries, opEvery),

		accountFails: newAttempts(accountTries, accountEvery),
		accounts:     make(map[string]accountRecord),
		cost:         bcryptCost,
		bans:         make(map[string]banRecord),
		mutes:        make(map[string]muteRecord),
		topics:       make(map[string]topicRecord),
		modes:        make(map[string]modeRecord),
		deletions:    make(map[string]time.Time),
		orders:       make(map[string]time.Time),
		actions:      make(map[string]*atomic.Uint64, len(modActions)),
	}
	if password != "" {
		m.password, m.hasPass = sha256.Sum256([]byte(password)), true
	}
	for _, a := range modActions {
		m.actions[a] = new(atomic.Uint64)
	}
	return m
}

// Start loads the records the store holds and applies, until ctx ends,
// every change made to them from then on, here or on another node. A hub
// that is never started keeps its own changes only.
func (m *Moderation) Start(ctx context.Context) error {
	for _, b := range []string{bucketAccounts, bucketBans, bucketMutes, bucketTopics, bucketModes, bucketOrders, bucketDeletions} {
		// Watch first: a change made between Load and Watch would be
		// lost; one seen twice is applied twice, which is once.
		if err := m.state.Watch(ctx, b, func(key string, value []byte) { m.apply(b, key, value) }); err != nil {
			return fmt.Errorf("watch %s: %w", b, err)
		}
		recs, err := m.state.Load(ctx, b)
		if err != nil {
			return fmt.Errorf("load %s: %w", b, err)
		}
		for k, v := range recs {
			m.apply(b, k, v)
		}
	}
	return nil
}

// apply takes one record, or its removal (value nil), into force, and
// does what it means for the members here: a new ban disconnects them,
// a new topic is told to the room.
func (m *Moderation) apply(bucket, key string, value []byte) {
	var err error
	switch bucket {
	case bucketAccounts:
		err = m.applyAccount(key, value)
	case bucketBans:
		err = m.applyBan(key, value)
	case bucketMutes:
		err = applyRecord(m, m.mutes, key, value)
	case bucketTopics:
		err = m.applyTopic(key, value)
	case bucketModes:
		err = m.applyMode(key, value)
	case bucketOrders:
		err = m.applyOrder(key, value)
	case bucketDeletions:
		err = m.applyDeletion(key, value)
	}
	if err != nil {
		m.hub.log.Warn("moderation record ignored", "bucket", bucket, "key", key, "err", err)
	}
}

// applyRecord puts a record into to, or takes it out.
func applyRecord[R any](m *Moderation, to map[string]R, key string, value []byte) error {
	_, _, err := swapRecord(m, to, key, value)
	return err
}

// swapRecord puts a record into to, or takes it out (value nil), and
// returns the record it replaced (the zero R if none) and the new one.
func swapRecord[R any](m *Moderation, to map[string]R, key string, value []byte) (old, rec R, err error) {
	if value != nil {
		if err := json.Unmarshal(value, &rec); err != nil {
			return old, rec, err
		}
	}
	m.mu.Lock()
	old = to[key]
	if value == nil {
		delete(to, key)
	} else {
		to[key] = rec
	}
	m.countActiveLocked()
	m.mu.Unlock()
	return old, rec, nil
}

// inRoom runs fn with the room called name, if this node has it, kept
// from being forgotten meanwhile; fn runs with no lock held.
func (m *Moderation) inRoom(name string, fn func(r *Room)) {
	h := m.hub
	h.mu.Lock()
	r := h.rooms[name]
	if r != nil {
		h.pinLocked(r)
	}
	h.mu.Unlock()
	if r != nil {
		defer h.unpin(r)
		fn(r)
	}
}

func (m *Moderation) countActiveLocked() {
	n := len(m.mutes)
	rules := &speechRules{names: make(map[string]bool, len(m.mutes)), sources: make(map[string]bool), rooms: make(map[string]bool)}
	for name, mu := range m.mutes {
		rules.names[name] = true
		if mu.Source != "" {
			rules.sources[mu.Source] = true
		}
	}
	for room, md := range m.modes {
		if md.Moderated || md.Slow > 0 {
			rules.rooms[room] = true
			n++
		}
	}
	m.speech.Store(rules)
	m.active.Store(int32(n))
}

// speechRules says which members and rooms a mute or a mode may stop
// from speaking: every mute's name and address, ended or not (maySpeak
// looks at those), and the rooms moderated or slow. Never changed once
// made (see countActiveLocked).
type speechRules struct {
	names, sources, rooms map[string]bool
}

// free reports whether nothing in r can stop the member called name
// (lower case) from source from speaking in room.
func (r *speechRules) free(name, source, room string) bool {
	return r != nil && !r.names[name] && (source == "" || !r.sources[source]) && !r.rooms[room]
}

// save writes a record to the store and applies it here at once: the
// store's Watch may bring it back later, or never if Start was not
// called.
func (m *Moderation) save(bucket, key string, rec any) error {
	value, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := m.state.Put(ctx, bucket, key, value); err != nil {
		return fmt.Errorf("could not be saved: %w", err)
	}
	m.apply(bucket, key, value)
	return nil
}

// remove deletes a record from the store and here.
func (m *Moderation) remove(bucket, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := m.state.Delete(ctx, bucket, key); err != nil {
		return fmt.Errorf("could not be saved: %w", err)
	}
	m.apply(bucket, key, nil)
	return nil
}

// did counts and logs an action an operator took.
func (m *Moderation) did(c *Client, action string, args ...any) {
	m.actions[action].Add(1)
	m.hub.log.Info("moderation", append([]any{"action", action, "by", c.Name(), "by_addr", c.addr}, args...)...)
}

// admit refuses a newcomer whose address is banned: it is the hub's
// admission, so every transport refuses it, with the address the member
// is known by (the one a trusted proxy names, for a page behind one).
func (m *Moderation) admit(c *Client) error {
	addr, err := netip.ParseAddr(c.ip)
	if err != nil {
		return nil
	}
	addr = addr.Unmap()
	now := time.Now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, b := range m.bans {
		if b.prefix.Contains(addr) && (b.Until.IsZero() || now.Before(b.Until)) {
			m.banned.Add(1)
			left := time.Duration(0)
			if !b.Until.IsZero() {
				left = b.Until.Sub(now)
			}
			return &BanError{Reason: b.Reason, Left: left}
		}
	}
	return nil
}

// maySpeak reports whether c may say a line to its room now, and if not
// tells it why: it is muted, the room is moderated, or the room is slow
// and c spoke too lately. Operators always may. Reader only.
func (m *Moderation) maySpeak(c *Client) bool {
	if m.active.Load() == 0 || c.op.Load() {
		return true
	}
	name := strings.ToLower(c.Name())
	if m.speech.Load().free(name, c.source, c.room.name) {
		return true
	}
	now := time.Now()
	m.mu.RLock()
	mute, muted := m.muteOfLocked(name, c.source, now)
	mode := m.modes[c.room.name]
	m.mu.RUnlock()
	switch {
	case muted:
		why := "you are muted"
		if !mute.Until.IsZero() {
			why += " for " + humanDuration(mute.Until.Sub(now)) + " more"
		}
		c.errorf("%s: you can read the room but what you say is not sent", why)
		return false
	case mode.Moderated && !slices.Contains(mode.Voice, name):
		c.errorf("%s is moderated: only operators and members they voice may speak", c.room.name)
		return false
	case mode.Slow > 0:
		every := time.Duration(mode.Slow) * time.Second
		if wait := c.saidAt.Add(every).Sub(now); !c.saidAt.IsZero() && wait > 0 {
			c.errorf("%s is in slow mode: one line every %d s; wait %d s", c.room.name, mode.Slow, int(math.Ceil(wait.Seconds())))
			return false
		}
		c.saidAt = now
	}
	return true
}

// mayMessage reports whether c may send a private message, and if not
// tells it why: a muted member may not. Reader only.
func (m *Moderation) mayMessage(c *Client) bool {
	if m.active.Load() == 0 || c.op.Load() {
		return true
	}
	m.mu.RLock()
	_, muted := m.muteOfLocked(strings.ToLower(c.Name()), c.source, time.Now())
	m.mu.RUnlock()
	if muted {
		c.errorf("you are muted: you can read, but not send messages")
	}
	return !muted
}

// muteOfLocked returns the mute in force on the member called name (lower
// case) from source, if there is one.
func (m *Moderation) muteOfLocked(name, source string, now time.Time) (muteRecord, bool) {
	if mu, ok := m.mutes[name]; ok && (mu.Until.IsZero() || now.Before(mu.Until)) {
		return mu, true
	}
	if source == "" {
		return muteRecord{}, false
	}
	for _, mu := range m.mutes {
		if mu.Source == source && (mu.Until.IsZero() || now.Before(mu.Until)) {
			return mu, true
		}
	}
	return muteRecord{}, false
}

// pruneEnded removes from the store the mutes and bans that ended by
// now: they refuse nobody, and are not to fill the places maxMuteBans
// and maxBans allow, nor keep maySpeak looking.
func (m *Moderation) pruneEnded(now time.Time) {
	ended := func(until time.Time) bool { return !until.IsZero() && !now.Before(until) }
	var mutes, bans []string
	m.mu.RLock()
	for k, mu := range m.mutes {
		if ended(mu.Until) {
			mutes = append(mutes, k)
		}
	}
	for k, b := range m.bans {
		if ended(b.Until) {
			bans = append(bans, k)
		}
	}
	m.mu.RUnlock()
	for _, k := range mutes {
		m.remove(bucketMutes, k)
	}
	for _, k := range bans {
		m.remove(bucketBans, k)
	}
}

// topic returns room's topic, "" for none.
func (m *Moderation) topic(room string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.topics[room].Text
}

// command runs the moderation command name, if it is one, and reports
// whether it was.
func (m *Moderation) command(c *Client, name, arg string) bool {
	if f, ok := map[string]func(*Client, string){
		"op": m.op, "deop": m.deop, "whois": m.whois, "topic": m.topicCmd,
		"register": m.register, "identify": m.identify, "password": m.changePassword, "unregister": m.unregister,
	}[name]; ok {
		f(c, arg)
		return true
	}
	f, ok := map[string]func(*Client, string){
		"kick": m.kick, "mute": m.mute, "unmute": m.unmute,
		"ban": m.ban, "unban": m.unban, "bans": m.listBans,
		"moderate": m.moderate, "voice": m.voice, "devoice": m.devoice, "slow": m.slow,
		"delete": m.deleteCmd, "purge": m.purge,
	}[name]
	if !ok {
		return false
	}
	if !c.op.Load() {
		c.errorf("/%s is for operators; /op PASSWORD if you are one", name)
		return true
	}
	f(c, arg)
	return true
}

// op is /op PASSWORD: the session becomes an operator's.
func (m *Moderation) op(c *Client, arg string) {
	if !m.hasPass {
		c.errorf("this server has no operators (it was started without --op-password)")
		return
	}
	if arg == "" {
		c.errorf("usage: /op PASSWORD")
		return
	}
	if c.op.Load() {
		c.errorf("you are already an operator")
		return
	}
	now := time.Now()
	if wait := m.opFails.wait(c.source, now); wait > 0 {
		c.errorf("too many wrong operator passwords from your address; try again in %d s", int(math.Ceil(wait.Seconds())))
		return
	}
	sum := sha256.Sum256([]byte(arg))
	if subtle.ConstantTimeCompare(sum[:], m.password[:]) != 1 {
		m.opFails.fail(c.source, now)
		m.opFailures.Add(1)
		m.hub.logs.Log(slog.LevelWarn, "wrong operator passwords", "wrong operator password",
			"name", c.Name(), "addr", c.addr, "transport", c.transport)
		c.errorf("wrong operator password")
		return
	}
	c.op.Store(true)
	m.did(c, "op")
	c.send(KindSystem, "you are now an operator: /help lists what you may do; /deop ends it")
}

// deop is /deop: the session is no longer an operator's.
func (m *Moderation) deop(c *Client, _ string) {
	if !c.op.Swap(false) {
		c.errorf("you are not an operator")
		return
	}
	m.did(c, "deop")
	c.send(KindSystem, "you are no longer an operator")
}

// target finds the member an operator names, on this node, and says why
// if it cannot.
func (m *Moderation) target(c *Client, name, usage string) *Client {
	if name == "" {
		c.errorf("usage: %s", usage)
		return nil
	}
	if err := ValidNick(name); err != nil {
		c.errorf("%v", err)
		return nil
	}
	t := m.hub.lookup(name)
	if t == nil {
		if m.hub.cluster != nil {
			c.errorf("no one called %s is on this node; ask on the node they are on", name)
		} else {
			c.errorf("no one called %s is here", name)
		}
	}
	return t
}

// disconnect ends t's session for reason, which its leave notice shows.
func disconnect(t *Client, reason string) {
	t.kicked.Store(&reason)
	t.member.Close("disconnected: " + reason)
}

// kick is /kick NAME [REASON].
func (m *Moderation) kick(c *Client, arg string) {
	name, reason := cutWord(arg)
	if len(reason) > maxReason {
		c.errorf("reason too long: at most %d bytes", maxReason)
		return
	}
	if m.remoteTarget(name) {
		m.order(c, orderRecord{Action: "kick", Name: name, Reason: reason})
		return
	}
	t := m.target(c, name, "/kick NAME [REASON]")
	if t == nil {
		return
	}
	why := "kicked by " + c.Name()
	if reason != "" {
		why += ": " + reason
	}
	disconnect(t, why)
	m.did(c, "kick", "target", t.Name(), "target_addr", t.addr, "reason", reason)
	c.send(KindSystem, "you kicked "+t.Name())
}

// mute is /mute NAME [DURATION] [REASON].
func (m *Moderation) mute(c *Client, arg string) {
	name, rest := cutWord(arg)
	d, reason, err := durationAndReason(rest)
	if err != nil {
		c.errorf("%v", err)
		return
	}
	t := m.target(c, name, "/mute NAME [DURATION] [REASON]")
	if t == nil {
		return
	}
	if t == c {
		c.errorf("you cannot mute yourself")
		return
	}
	now := time.Now()
	m.pruneEnded(now)
	m.mu.RLock()
	n := len(m.mutes)
	m.mu.RUnlock()
	if n >= maxMuteBans {
		c.errorf("%d members are muted, the most there may be; /unmute one first", n)
		return
	}
	rec := muteRecord{Name: t.Name(), Source: t.source, By: c.Name(), At: now}
	if d > 0 {
		rec.Until = now.Add(d)
	}
	if err := m.save(bucketMutes, strings.ToLower(t.Name()), rec); err != nil {
		c.errorf("the mute %v", err)
		return
	}
	m.did(c, "mute", "target", t.Name(), "target_addr", t.addr, "duration", d, "reason", reason)
	how := ""
	if d > 0 {
		how = " for " + humanDuration(d)
	}
	t.send(KindSystem, "you are muted"+how+" by "+c.Name()+withReason(reason)+": you can read the room but what you say is not sent")
	c.send(KindSystem, "you muted "+t.Name()+how)
}

// unmute is /unmute NAME: the mute on that name, or on the member now
// called so, ends.
func (m *Moderation) unmute(c *Client, arg string) {
	if arg == "" || ValidNick(arg) != nil {
		c.errorf("usage: /unmute NAME")
		return
	}
	key := strings.ToLower(arg)
	// Looked up before taking m.mu: the hub's lock is held while taking
	// it (a join reads the topic), never the other way round.
	t := m.hub.lookup(arg)
	m.mu.RLock()
	_, ok := m.mutes[key]
	if !ok && t != nil {
		for k, mu := range m.mutes {
			if mu.Source == t.source {
				key, ok = k, true
				break
			}
		}
	}
	m.mu.RUnlock()
	if !ok {
		c.errorf("%s is not muted", arg)
		return
	}
	if err := m.remove(bucketMutes, key); err != nil {
		c.errorf("the unmute %v", err)
		return
	}
	m.did(c, "unmute", "target", arg)
	if t != nil {
		t.send(KindSystem, "you are no longer muted")
	}
	c.send(KindSystem, "you unmuted "+arg)
}

// whois is /whois NAME: anyone may ask; only operators see the address.
func (m *Moderation) whois(c *Client, arg string) {
	t := m.target(c, arg, "/whois NAME")
	if t == nil {
		return
	}
	var b strings.Builder
	b.WriteString(t.Name())
	b.WriteString(": connected by ")
	b.WriteString(t.transport)
	b.WriteString(" since ")
	b.WriteString(t.since.UTC().Format("2006-01-02 15:04 UTC"))
	b.WriteString(" (")
	b.WriteString(humanDuration(time.Since(t.since)))
	b.WriteString(" ago)")
	if m.isRegistered(t.Name()) {
		if m.accountOf(t) != "" {
			b.WriteString(", registered and identified")
		} else {
			b.WriteString(", registered")
		}
	}
	if t.verified {
		b.WriteString(", verified (signed in on the site)")
	}
	if t.op.Load() {
		b.WriteString(", operator")
	}
	if c.op.Load() {
		b.WriteString(", from ")
		b.WriteString(t.addr)
	}
	c.send(KindSystem, b.String())
}

// topicCmd is /topic [TEXT]: alone, anyone sees the room's topic; with
// TEXT an operator sets it, and "/topic -" clears it.
func (m *Moderation) topicCmd(c *Client, arg string) {
	room := c.room.name
	if arg == "" {
		m.mu.RLock()
		t, ok := m.topics[room]
		m.mu.RUnlock()
		if !ok || t.Text == "" {
			c.send(KindSystem, room+" has no topic")
			return
		}
		c.send(KindSystem, "topic of "+room+": "+t.Text+" (set by "+t.By+", "+t.At.UTC().Format("2006-01-02 15:04 UTC")+")")
		return
	}
	if !c.op.Load() {
		c.errorf("setting the topic is for operators; /topic alone shows it")
		return
	}
	if len(arg) > maxTopic {
		c.errorf("topic too long: at most %d bytes", maxTopic)
		return
	}
	if arg == "-" {
		// Kept as a topic of no text, so that every node can say who
		// cleared it.
		arg = ""
	}
	if err := m.save(bucketTopics, room, topicRecord{Text: arg, By: c.Name(), At: time.Now()}); err != nil {
		c.errorf("the topic %v", err)
		return
	}
	m.did(c, "topic", "room", room, "topic", arg)
}

// applyTopic takes a topic, or its removal, into force and tells the
// room here if it changed. Each node tells its own members: topic events
// are not relayed.
func (m *Moderation) applyTopic(room string, value []byte) error {
	old, rec, err := swapRecord(m, m.topics, room, value)
	if err != nil || old.Text == rec.Text {
		return err
	}
	m.inRoom(room, func(r *Room) { r.tell(&Event{Kind: KindTopic, Room: room, From: rec.By, Text: rec.Text}) })
	return nil
}

// stats adds moderation's counters to st.
func (m *Moderation) stats(st *Stats) {
	st.Moderation = make(map[string]uint64, len(m.actions))
	for a, n := range m.actions {
		st.Moderation[a] = n.Load()
	}
	st.OpFailures = m.opFailures.Load()
	st.PasswordFailures = m.passwordFailures.Load()
	st.Banned = m.banned.Load()
}

// cutWord splits s at its first space: a word and the rest, trimmed.
func cutWord(s string) (string, string) {
	w, rest, _ := strings.Cut(strings.TrimSpace(s), " ")
	return w, strings.TrimSpace(rest)
}

// durationAndReason reads "[DURATION] [REASON]": a first word that starts
// as a number (a sign allowed) is a duration (see parseDuration), and a
// bad one is refused rather than taken for the reason.
func durationAndReason(s string) (time.Duration, string, error) {
	w, rest := cutWord(s)
	var d time.Duration
	if num := strings.TrimLeft(w, "+-"); num != "" && num[0] >= '0' && num[0] <= '9' {
		var err error
		if d, err = parseDuration(w); err != nil {
			return 0, "", err
		}
		s = rest
	}
	if len(s) > maxReason {
		return 0, "", fmt.Errorf("reason too long: at most %d bytes", maxReason)
	}
	return d, s, nil
}

// parseDuration reads a duration as operators write one: 30s, 10m, 2h,
// 7d, or Go's 1h30m; positive and at most ten years.
func parseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("duration %q: use a number and s, m, h or d, such as 10m, 2h or 7d", s)
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil {
			return 0, bad
		}
		d = time.Duration(min(n, uint64(maxDuration/(24*time.Hour))+1)) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad
		}
	}
	switch {
	case d <= 0:
		return 0, fmt.Errorf("duration %q: must be more than 0 (leave it out for no end)", s)
	case d > maxDuration:
		return 0, fmt.Errorf("duration %q: at most 3650d (leave it out for no end)", s)
	}
	return d, nil
}

// humanDuration writes d the way parseDuration reads it, to the minute
// (to the second under a minute): 6d23h, 1h59m, 45s.
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return strconv.Itoa(max(int(math.Ceil(d.Seconds())), 0)) + "s"
	}
	d = d.Round(time.Minute)
	days, h, mins := d/(24*time.Hour), d%(24*time.Hour)/time.Hour, d%time.Hour/time.Minute
	var b strings.Builder
	if days > 0 {
		fmt.Fprintf(&b, "%dd", days)
	}
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if mins > 0 && days == 0 {
		fmt.Fprintf(&b, "%dm", mins)
	}
	return b.String()
}

func withReason(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}

// banKey is the store key of the ban of mask: its text, in hex, as some
// stores take only letters, digits and a few signs in keys.
func banKey(mask netip.Prefix) string { return hex.EncodeToString([]byte(mask.String())) }

// attempts counts failures by address, a window at a time, to refuse an
// address that failed max times in the window until it ends: password
// guessing. It keeps at most maxAttemptAddrs addresses; past that, the
// windows that ended go first, then the oldest.
type attempts struct {
	max    int
	window time.Duration

	mu sync.Mutex
	by map[string]attemptWindow
}

type attemptWindow struct {
	start time.Time
	n     int
}

const maxAttemptAddrs = 1 << 14

func newAttempts(max int, window time.Duration) *attempts {
	return &attempts{max: max, window: window, by: make(map[string]attemptWindow)}
}

// wait returns how long source must wait before it may try again; 0 or
// less if it may now.
func (a *attempts) wait(source string, now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	w, ok := a.by[source]
	if !ok || w.n < a.max {
		return 0
	}
	return w.start.Add(a.window).Sub(now)
}

// fail counts a failure from source.
func (a *attempts) fail(source string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w, ok := a.by[source]
	if !ok || now.Sub(w.start) >= a.window {
		if !ok && len(a.by) >= maxAttemptAddrs {
			a.pruneLocked(now)
		}
		w = attemptWindow{start: now}
	}
	w.n++
	a.by[source] = w
}

func (a *attempts) pruneLocked(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for s, w := range a.by {
		if now.Sub(w.start) >= a.window {
			delete(a.by, s)
		} else if oldest == "" || w.start.Before(oldestAt) {
			oldest, oldestAt = s, w.start
		}
	}
	if len(a.by) >= maxAttemptAddrs {
		delete(a.by, oldest)
	}
}
