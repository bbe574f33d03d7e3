package tcpserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Errors from [Hub.Connect]. Their text is fit to show the refused user.
var (
	ErrServerFull    = errors.New("server full, try again later")
	ErrTooManyFromIP = errors.New("too many connections from your address")
	ErrHubClosed     = errors.New("server shutting down")
)

// HubConfig holds the hub's limits. The zero value of a field means its
// default (see [HubConfig.withDefaults]); a negative Rate, MaxClients,
// MaxPerIP, ChangeBurst, HistoryMemory, PrivateRate, PrivateRatePerIP,
// RoomRate or RoomBytes means no limit, a negative History no history, a
// negative AnnounceDelay none, a negative Backlog that no line waits (over
// the rate is refused at once).
type HubConfig struct {
	DefaultRoom   string  // where members start; "lobby"
	History       int     // lines of history replayed on join; 20
	HistoryKeep   int     // lines a room keeps in the memory store, for scrollback (at least History); 10000
	HistoryMemory int64   // bytes the lines of all rooms together may take in memory; DefaultHistoryMemory
	MaxLine       int     // longest line accepted, in bytes; 4096
	Rate          float64 // lines per second a member may send; 10
	Burst         int     // lines a member may send at once; 20
	Backlog       int     // lines over the rate that may wait their turn, per member, before more are refused (see flood.go); 100
	MaxClients    int     // members at once, all transports together; 20000
	MaxPerIP      int     // members at once from one IP address (IPv6: one /64); 100
	MaxRooms      int     // rooms kept at once, empty or not, besides the default room; 1000
	AnnounceLimit int     // rooms bigger than this stop announcing joins, leaves and name changes; 200

	// AnnounceDelay is how long a newcomer to a room stays unannounced,
	// unless it speaks first; one who leaves within it is not announced
	// at all (see Room.join); 5 s.
	AnnounceDelay time.Duration

	// PrivateRate private messages a second a member may be sent, all
	// senders together, PrivateBurst at once; PrivateRatePerIP and
	// PrivateBurstPerIP the same from any one address (IPv6: any one
	// /64). 5 and 20, 2 and 8. See private.go.
	PrivateRate       float64
	PrivateBurst      int
	PrivateRatePerIP  float64
	PrivateBurstPerIP int

	// ShowAddresses says whose address join and leave notices carry, to
	// the room and to the relay alike; ShowAddrsTCP.
	ShowAddresses ShowAddrs

	// ChangeBurst name and room changes (/nick, /join) a member may make
	// at once, and one every ChangeEvery after that; 3 and 5 s. Each is
	// a notice to a whole room, so they have a rate of their own, below
	// the rate of lines. A negative ChangeBurst means no limit.
	ChangeBurst int
	ChangeEvery time.Duration

	// RoomRate and RoomBytes are each room's output budget: deliveries
	// (lines times the members who get them) and bytes delivered (bytes
	// times members) a second, one second of each at once; a member's
	// line over it is refused with a notice that the room is busy.
	// DefaultRoomRate and DefaultRoomBytes; negative: no budget.
	RoomRate  float64
	RoomBytes float64

	// Relay, if set, carries room events to other nodes (see [Relay]).
	Relay Relay

	// OpPassword, if set, is the password /op takes to make a session an
	// operator's (see [Moderation]); "" for no operators.
	OpPassword string

	// PasswordCost is the bcrypt cost registered names' passwords are
	// hashed at (see accounts.go); bcrypt's default, 10, about 50 ms of
	// a core. Below bcrypt's least, 4, it is 4.
	PasswordCost int

	// State keeps what moderation and registered names must remember
	// (see [StateStore]); nil for a [MemState] of the hub's own.
	State StateStore

	// Speak says who may speak (see verified.go); SpeakAnyone.
	Speak Speak

	// Store, if set, keeps every room's lines (see [Store]); the hub then
	// keeps only each room's last History lines in memory, to replay on
	// join, and reads them from Store when it first needs them. If nil,
	// the hub keeps HistoryKeep lines a room in memory, within
	// HistoryMemory, for as long as the room is kept.
	Store Store
}

func (c HubConfig) withDefaults() HubConfig {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if c.DefaultRoom == "" {
		c.DefaultRoom = "lobby"
	}
	def(&c.History, 20)
	def(&c.HistoryKeep, 10000)
	if c.HistoryMemory == 0 {
		c.HistoryMemory = DefaultHistoryMemory
	}
	def(&c.MaxLine, 4096)
	if c.Rate == 0 {
		c.Rate = 10
	}
	def(&c.Burst, 20)
	def(&c.Backlog, 100)
	def(&c.MaxClients, 20000)
	def(&c.MaxPerIP, 100)
	def(&c.MaxRooms, 1000)
	def(&c.AnnounceLimit, 200)
	if c.RoomRate == 0 {
		c.RoomRate = DefaultRoomRate
	}
	if c.RoomBytes == 0 {
		c.RoomBytes = DefaultRoomBytes
	}
	def(&c.ChangeBurst, 3)
	if c.ChangeEvery <= 0 {
		c.ChangeEvery = 5 * time.Second
	}
	if c.AnnounceDelay == 0 {
		c.AnnounceDelay = 5 * time.Second
	}
	if c.PrivateRate == 0 {
		c.PrivateRate = 5
	}
	def(&c.PrivateBurst, 20)
	if c.PrivateRatePerIP == 0 {
		c.PrivateRatePerIP = 2
	}
	def(&c.PrivateBurstPerIP, 8)
	return c
}

// A Relay carries room events between this hub and the hubs of other
// nodes. The hub calls Publish, in order, for every room event a local
// member causes (message, action, join, leave, nick); Publish must not
// block. Events from other nodes come in through [Hub.Deliver].
//
// A relay that also implements [Cluster] makes names, presence, private
// messages and history span the nodes too. A relay that has a method
// NodeID() string names this node: the hub names its lines with it (see
// [Event.Key]).
type Relay interface {
	Publish(ev *Event)
}

// Stats is a snapshot of the hub's counters.
type Stats struct {
	Clients      map[string]int // members now, by transport
	Rooms        int            // rooms kept now
	LinesIn      uint64         // lines accepted from members
	Deliveries   uint64         // events handed to members' queues
	Refused      uint64         // lines refused: flood control or too long
	RoomBusy     uint64         // lines refused: their room's output budget was spent (HubConfig.RoomRate)
	Rejected     uint64         // connections refused by the limits
	SlowKicks    uint64         // members cut off for not keeping up
	FloodKicks   uint64         // members cut off for flooding
	Connections  uint64         // members admitted since start
	HistoryBytes int64          // what the rooms' history takes now (see HubConfig.HistoryMemory)

	// Private messages not delivered: over the rate of their recipient
	// (all senders together, or from the sender's address), or with the
	// recipient's queue half full.
	PrivateRefusedRate, PrivateRefusedPerIP, PrivateRefusedFull uint64

	Moderation map[string]uint64 // operators' actions taken, by command ("kick", "ban", ...)
	OpFailures uint64            // wrong operator passwords

	PasswordFailures uint64 // wrong passwords for registered names
	Banned           uint64 // connections refused for a ban
}

// A Hub holds the rooms and the members of one chatbridge node. Members of
// every transport meet in its rooms. It has no goroutine of its own.
type Hub struct {
	cfg     HubConfig
	log     *slog.Logger
	logs    *LogThrottle // members cut off: at most a line per kind per LogEvery
	cluster Cluster      // cfg.Relay, if it is one; nil on a single node

	// store keeps the rooms' lines: cfg.Store, or else hist. hist keeps
	// them in memory, each room's as its roomHistory: every line a room
	// keeps when it is the store, its last History lines (what a join
	// replays) when cfg.Store is another, which is then read once a
	// room, outside the room's lock, to fill it (see hydrate).
	store Store
	hist  *memStore

	// lobby is the default room. It is made with the hub, is in rooms
	// without counting against MaxRooms, and is never forgotten: a member
	// can always be put in it.
	lobby *Room

	mod *Moderation // operators, bans, mutes, topics, modes (moderation.go)

	// verifiedNames holds the lower-case names of the verified members
	// here (verified.go), for presence to read without the hub's lock;
	// verifiedCount how many there are.
	verifiedNames sync.Map
	verifiedCount atomic.Int32

	mu        sync.Mutex
	names     nameBook            // the names in use here, and which may be taken
	drawn     map[string]struct{} // guest names being claimed from the cluster for members connecting
	rooms     map[string]*Room    // by name
	perIP     map[string]int
	clients   int
	transport map[string]int

	node      string        // this node's name in a cluster, the Node of its lines' keys; "" alone
	nextID    atomic.Uint64 // the last event or client ID given (see newID)
	histEpoch atomic.Uint64 // rooms whose synced is older take history from the cluster again

	linesIn, deliveries, refused, rejected atomic.Uint64
	slowKicks, floodKicks, connections     atomic.Uint64
	roomBusy                               atomic.Uint64

	privateRefusedRate, privateRefusedPerIP, privateRefusedFull atomic.Uint64

	budget budgetRates // cfg.RoomRate and cfg.RoomBytes, for every room
}

// NewHub returns a hub with the given limits.
func NewHub(cfg HubConfig, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		cfg:       cfg.withDefaults(),
		log:       log,
		logs:      NewLogThrottle(log, LogEvery),
		names:     newNameBook(),
		drawn:     make(map[string]struct{}),
		rooms:     make(map[string]*Room),
		perIP:     make(map[string]int),
		transport: make(map[string]int),
	}
	h.cluster, _ = cfg.Relay.(Cluster)
	h.budget = budgetRates{deliveries: max(h.cfg.RoomRate, 0), bytes: max(h.cfg.RoomBytes, 0)}
	if n, ok := cfg.Relay.(interface{ NodeID() string }); ok {
		h.node = n.NodeID()
	}
	h.histEpoch.Store(1)
	if cfg.Store == nil {
		keep := 0
		if h.cfg.History > 0 {
			keep = max(h.cfg.History, h.cfg.HistoryKeep)
		}
		h.hist = newMemStore(keep, h.cfg.HistoryMemory, true)
		h.store = h.hist
	} else {
		h.hist = newMemStore(max(h.cfg.History, 0), h.cfg.HistoryMemory, false)
		h.store = cfg.Store
	}
	h.mod = newModeration(h, cfg.State, cfg.OpPassword)
	if cfg.PasswordCost != 0 {
		h.mod.cost = max(cfg.PasswordCost, bcrypt.MinCost)
	}
	h.lobby = newRoom(h, h.cfg.DefaultRoom)
	h.rooms[h.lobby.name] = h.lobby
	return h
}

// Config returns the hub's limits, defaults filled in.
func (h *Hub) Config() HubConfig { return h.cfg }

// Moderation returns the hub's moderation, to Start it.
func (h *Hub) Moderation() *Moderation { return h.mod }

// ConnectInfo describes a new member to [Hub.Connect].
type ConnectInfo struct {
	Addr      string // remote address: limits, logs, and join and leave notices if HubConfig.ShowAddresses says so
	Transport string // "tcp", "ws", ...: for stats and HubConfig.ShowAddresses
	Nick      string // the name asked for; "" for a guest name
	Room      string // the room asked for; "" for the default room
	Echo      bool   // deliver the member's own room lines back to it
	Key       string // the fingerprint of the public key the member proved it holds (SSH), "SHA256:..."; "" for none

	// Verified says a site vouched for Nick (see verified.go): the
	// member gets that name or is refused with a [VerifiedNameError].
	Verified bool
}

// Connect admits a new member: it checks the limits, gives it a name,
// sends it the welcome, the room's history and who is there, and
// announces it to the room. The returned Client must get every line the
// member sends (Handle) and, at the end, Leave.
//
// A name or room that cannot be had is not an error: the member gets a
// guest name or the default room, which always exists, and a notice saying
// why. (A guest name asked for gets no notice: it is what the page asks
// for when it comes back after a restart, and the member is simply a guest
// again.)
func (h *Hub) Connect(m Member, info ConnectInfo) (*Client, error) {
	c := &Client{
		hub:       h,
		member:    m,
		id:        h.newID(time.Now()),
		addr:      info.Addr,
		shown:     h.cfg.ShowAddresses.shows(info.Transport, info.Addr),
		ip:        hostOf(info.Addr),
		transport: info.Transport,
		echo:      info.Echo,
		key:       info.Key,
		since:     time.Now(),
		verified:  info.Verified,
	}
	c.source = sourceKey(c.ip)
	c.bucket.tokens = float64(h.cfg.Burst)
	c.changes.tokens = float64(h.cfg.ChangeBurst)
	if err := h.mod.admit(c); err != nil {
		h.rejected.Add(1)
		return nil, err
	}
	c.scroll.rate.tokens = historyBurst
	var notices []string

	name := info.Nick
	if name != "" && !c.verified { // a verified name is refused, not replaced (takeVerifiedLocked)
		if err := ValidNick(name); err != nil {
			notices = append(notices, err.Error()+"; you are a guest for now")
			name = ""
		}
	}
	keyed := false
	if owner, ok := h.mod.keyOwns(name, c.key); ok && !c.verified {
		// An SSH key that owns the registered name: the member is
		// identified as by its password (accounts.go).
		name, c.account, keyed = owner, owner, true
	}

	h.mu.Lock()
	if err := h.admitLocked(c); err != nil {
		h.mu.Unlock()
		h.rejected.Add(1)
		return nil, err
	}
	if c.verified {
		if err := h.takeVerifiedLocked(c, name); err != nil {
			h.mu.Unlock()
			h.release(c)
			h.rejected.Add(1)
			return nil, err
		}
	} else if name != "" {
		if err := h.names.check(name, c); err != nil {
			if !errors.Is(err, ErrNickGuest) {
				notices = append(notices, err.Error()+"; you are a guest for now")
			}
			name = ""
		}
	}
	asked := name
	want := h.cfg.DefaultRoom
	if rn, err := RoomName(info.Room); info.Room != "" && err == nil {
		want = rn
	}
	if h.cluster != nil || h.cfg.Store != nil {
		// Asking the other nodes, or the store, takes a round trip: not
		// under the lock.
		h.mu.Unlock()
		if h.cluster != nil {
			name, notices = h.claimForConnect(name, want, notices)
		}
		h.hydrate(want)
		h.mu.Lock()
		delete(h.drawn, name) // a guest name drawn for c: c's now, while the lock is held
	}
	if name != "" && h.cluster != nil {
		// Someone may have come in with it, or with one like it, while
		// the cluster was asked (two newcomers drawing one guest name).
		if err := h.names.clash(name, nil); err != nil {
			h.unclaimLocked(name)
			if name == asked {
				notices = append(notices, err.Error()+"; you are a guest for now")
			}
			// The guest name given instead is claimed too: one that is
			// not is unknown to the other nodes, so missing from their
			// presence and free for their members to take.
			h.mu.Unlock()
			name, notices = h.claimForConnect("", want, notices)
			h.mu.Lock()
			delete(h.drawn, name)
			if name != "" && h.names.clash(name, nil) != nil {
				h.unclaimLocked(name)
				name = ""
			}
		}
	}
	if c.verified && name != asked {
		// Taken on another node, or here while the cluster was asked.
		if name != "" {
			h.unclaimLocked(name)
		}
		h.mu.Unlock()
		h.release(c)
		h.rejected.Add(1)
		return nil, &VerifiedNameError{Name: asked, Why: "someone on another node of this server has it"}
	}
	if name == "" {
		name = h.guestNameLocked()
	}
	c.setName(name)
	h.names.add(name, c)
	if c.verified {
		h.verifiedNames.Store(strings.ToLower(name), struct{}{})
		h.verifiedCount.Add(1)
	}
	if keyed && name == c.account {
		notices = append(notices, "you are identified as "+name+": your SSH key owns the name")
	} else {
		keyed = false
	}
	if n := h.speakNotice(c); n != "" {
		notices = append(notices, n)
	}

	r := h.lobby
	if info.Room != "" {
		rn, err := RoomName(info.Room)
		if err == nil {
			var want *Room
			if want, err = h.roomLocked(rn); err == nil {
				r = want
			}
		}
		if err != nil {
			notices = append(notices, err.Error()+"; you are in "+r.name)
		}
	}
	c.room = r
	r.join(c, notices)
	h.mu.Unlock()

	h.connections.Add(1)
	if keyed {
		h.log.Info("name identified", "name", name, "addr", c.addr, "key", c.key)
	}
	h.log.Debug("member joined", "name", name, "addr", info.Addr, "transport", info.Transport, "room", r.name)
	return c, nil
}

// admitLocked applies the connection limits and counts c in.
func (h *Hub) admitLocked(c *Client) error {
	if h.cfg.MaxClients > 0 && h.clients >= h.cfg.MaxClients {
		return ErrServerFull
	}
	if h.cfg.MaxPerIP > 0 && c.source != "" && h.perIP[c.source] >= h.cfg.MaxPerIP {
		return ErrTooManyFromIP
	}
	h.clients++
	h.perIP[c.source]++
	h.transport[c.transport]++
	return nil
}

// release forgets c's name and counts it out. It runs once per client.
func (h *Hub) release(c *Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.names.remove(c.Name(), c) {
		if h.cluster != nil {
			h.cluster.ReleaseName(c.Name())
		}
		if c.verified {
			h.verifiedNames.Delete(strings.ToLower(c.Name()))
			h.verifiedCount.Add(-1)
		}
	}
	h.clients--
	if h.perIP[c.source]--; h.perIP[c.source] <= 0 {
		delete(h.perIP, c.source)
	}
	h.transport[c.transport]--
}

// guestNameLocked picks a free name such as guest-4821, not like any
// name here either (guest-1234 while someone is guest-l234).
func (h *Hub) guestNameLocked() string { return h.guestNameAmongLocked(0, 0) }

// guestNameAmongLocked is guestNameLocked in a cluster where others
// members are known to be on other nodes, after clashes draws that met a
// name another node holds. It draws from at least ten times as many names
// as there are members, here and there, and twice that after each clash,
// so that a draw seldom meets a name another node holds: this node cannot
// see that without asking the cluster, a round trip, and in a cluster of
// 95,000 four digits (9,000 names) made nearly every draw a clash.
func (h *Hub) guestNameAmongLocked(others, clashes int) string {
	digits := 4
	for space := 9000; space < (10*(h.clients+others))<<clashes && digits < 12; space *= 10 {
		digits++
	}
	for ; ; digits++ {
		limit := 1
		for range digits {
			limit *= 10
		}
		for range 20 {
			n := limit/10 + rand.IntN(limit-limit/10)
			name := "guest-" + strconv.Itoa(n)
			if _, ok := h.drawn[name]; !ok && h.names.clash(name, nil) == nil {
				return name
			}
		}
	}
}

// roomLocked returns the room called name, making it if need be. To make
// room for a new room it forgets the empty room idle longest. The default
// room, always there, is not counted.
func (h *Hub) roomLocked(name string) (*Room, error) {
	if r, ok := h.rooms[name]; ok {
		return r, nil
	}
	if len(h.rooms)-1 >= h.cfg.MaxRooms && !h.evictLocked() {
		return nil, fmt.Errorf("room %q cannot be made: the server's %d rooms are all in use", name, h.cfg.MaxRooms)
	}
	r := newRoom(h, name)
	h.rooms[name] = r
	return r, nil
}

// evictLocked forgets the empty room that has been idle longest, never the
// default room or a pinned one. It reports whether it found one.
func (h *Hub) evictLocked() bool {
	var oldest *Room
	var oldestAt time.Time
	for _, r := range h.rooms {
		if r == h.lobby || r.pins.Load() > 0 {
			continue
		}
		n, at := r.usage()
		if n == 0 && (oldest == nil || at.Before(oldestAt)) {
			oldest, oldestAt = r, at
		}
	}
	if oldest == nil {
		return false
	}
	h.forgetLocked(oldest)
	return true
}

// dropIfEmpty forgets r if nobody is in it and it has nothing to replay.
func (h *Hub) dropIfEmpty(r *Room) {
	if r == h.lobby {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropIfIdleLocked(r)
}

// dropIfIdleLocked forgets r if it is still one of the hub's rooms, nobody
// is in it, it has nothing to replay and nobody has it pinned.
func (h *Hub) dropIfIdleLocked(r *Room) {
	if h.rooms[r.name] == r && r != h.lobby && r.pins.Load() == 0 && r.idle() {
		h.forgetLocked(r)
	}
}

// forgetLocked takes r out of the hub, and its history out of the
// history's memory.
func (h *Hub) forgetLocked(r *Room) {
	delete(h.rooms, r.name)
	r.hist.close()
}

// trimHistory keeps the rooms' history within HistoryMemory (see
// memStore), and forgets the rooms it left empty and idle. Its caller
// holds no lock: it is called after each line is kept, and costs an
// atomic load when there is nothing to trim.
func (h *Hub) trimHistory() {
	emptied := h.hist.trim()
	if len(emptied) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, name := range emptied {
		if r := h.rooms[name]; r != nil {
			h.dropIfIdleLocked(r)
		}
	}
}

// pinLocked marks r as in use by a caller about to let go of the hub's
// lock; unpin ends it.
func (h *Hub) pinLocked(r *Room) { r.pins.Add(1) }

func (h *Hub) unpin(r *Room) { r.pins.Add(-1) }

// members returns the members on this node for whom keep is true.
func (h *Hub) members(keep func(*Client) bool) []*Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*Client
	for _, c := range h.names.byFold {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// lookup returns the member called name, on this node.
func (h *Hub) lookup(name string) *Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.names.get(name)
}

// rename gives c the name to, if c may take it: see [nameBook.check]. In
// a cluster the name must also be free on every other node.
func (h *Hub) rename(c *Client, to string) error {
	if err := ValidNick(to); err != nil {
		return err
	}
	from := c.Name()
	claimed := false
	if h.cluster != nil && !strings.EqualFold(to, from) {
		// Asking the other nodes takes a round trip: not under the lock.
		// A name this node refuses is not claimed from them at all.
		h.mu.Lock()
		err := h.names.check(to, c)
		h.mu.Unlock()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
		err = h.cluster.ClaimName(ctx, to, c.room.name)
		cancel()
		switch {
		case errors.Is(err, ErrNameTaken):
			return fmt.Errorf("nick %q %w", to, ErrNickTaken)
		case err != nil:
			h.log.Debug("cluster name claim failed; checking this node only", "name", to, "err", err)
		}
		claimed = true // on an error too: the cluster claims it later
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.names.check(to, c); err != nil {
		if claimed {
			// Someone here took it, or one like it, while the cluster
			// was asked.
			h.unclaimLocked(to)
		}
		return err
	}
	h.names.remove(from, c)
	h.names.add(to, c)
	c.setName(to)
	c.room.renamed()
	if claimed {
		h.cluster.ReleaseName(from)
	}
	return nil
}

// unclaimLocked gives back to the cluster a name claimed for a member who
// did not get it, unless a member here has it: a node's claim on a name
// is one, whichever member asked.
func (h *Hub) unclaimLocked(name string) {
	if h.cluster != nil && h.names.get(name) == nil {
		h.cluster.ReleaseName(name)
	}
}

// move takes c from its room to the room called name.
func (h *Hub) move(c *Client, name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.roomLocked(name)
	if err != nil {
		return err
	}
	old := c.room
	old.leave(c, "")
	h.dropIfIdleLocked(old)
	c.room = r
	r.join(c, nil)
	return nil
}

// RoomInfo is a room's name and how many are in it.
type RoomInfo struct {
	Name    string
	Members int
}

// Rooms lists the rooms, the fullest first. In a cluster it counts the
// members of every node.
func (h *Hub) Rooms() []RoomInfo {
	var remote map[string]int
	if h.cluster != nil {
		remote = h.cluster.RemoteRooms()
	}
	h.mu.Lock()
	list := make([]RoomInfo, 0, len(h.rooms)+len(remote))
	for _, r := range h.rooms {
		n, _ := r.usage()
		n += remote[r.name]
		delete(remote, r.name)
		list = append(list, RoomInfo{Name: r.name, Members: n})
	}
	h.mu.Unlock()
	for name, n := range remote {
		list = append(list, RoomInfo{Name: name, Members: n})
	}
	slices.SortFunc(list, func(a, b RoomInfo) int {
		if c := cmp.Compare(b.Members, a.Members); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return list
}

// Deliver hands an event from another node (through the [Relay]) to the
// local members of its room, with an ID of this hub's if it has none, and keeps it in the room's history. A join,
// leave or name change for a room nobody here is in is dropped, and one
// for a room here bigger than AnnounceLimit is not announced. A [KindBatch] of
// one sender's lines reaches each member as one queue entry, as a local
// batch does. Deliver never hands the event back to the relay.
func (h *Hub) Deliver(ev *Event) {
	now := time.Now()
	for _, line := range ev.Events {
		if line.ID == 0 {
			line.ID = h.newID(now)
		}
		if line.line == nil {
			line.finish()
		}
	}
	if ev.ID == 0 {
		ev.ID = h.newID(now)
	}
	if ev.Addr != "" && h.cfg.ShowAddresses == ShowAddrsNone {
		// The other node showed it; this one shows nobody's. It does not
		// know the member's transport, so the other settings trust the
		// sender's.
		ev.Addr, ev.line = "", nil
	}
	if ev.line == nil {
		ev.finish()
	}
	announce := ev.Kind == KindJoin || ev.Kind == KindLeave || ev.Kind == KindNick
	h.mu.Lock()
	r, ok := h.rooms[ev.Room]
	var err error
	if !ok && !announce {
		r, err = h.roomLocked(ev.Room)
	}
	if r != nil {
		// Kept until the event is in: a room with nobody in it could
		// otherwise be forgotten meanwhile, and its line with it.
		h.pinLocked(r)
		defer h.unpin(r)
	}
	h.mu.Unlock()
	if err != nil {
		h.log.Warn("relayed event dropped", "room", ev.Room, "err", err)
		return
	}
	if r == nil {
		return
	}
	if announce {
		if n, _ := r.usage(); n > h.cfg.AnnounceLimit {
			return
		}
	}
	r.broadcast(ev, nil)
}

// Stats returns a snapshot of the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	byTransport := make(map[string]int, len(h.transport))
	for t, n := range h.transport {
		if n > 0 {
			byTransport[t] = n
		}
	}
	rooms := len(h.rooms)
	h.mu.Unlock()
	st := Stats{
		Clients:      byTransport,
		Rooms:        rooms,
		LinesIn:      h.linesIn.Load(),
		Deliveries:   h.deliveries.Load(),
		Refused:      h.refused.Load(),
		RoomBusy:     h.roomBusy.Load(),
		Rejected:     h.rejected.Load(),
		SlowKicks:    h.slowKicks.Load(),
		FloodKicks:   h.floodKicks.Load(),
		Connections:  h.connections.Load(),
		HistoryBytes: h.hist.usedBytes(),

		PrivateRefusedRate:  h.privateRefusedRate.Load(),
		PrivateRefusedPerIP: h.privateRefusedPerIP.Load(),
		PrivateRefusedFull:  h.privateRefusedFull.Load(),
	}
	h.mod.stats(&st)
	return st
}

// CountSlowKick counts a member cut off for not keeping up, for
// transports that queue without an [Outbox] (which counts its own).
func (h *Hub) CountSlowKick() { h.slowKicks.Add(1) }

// stamp gives ev its ID and time and encodes it, ready to share.
func (h *Hub) stamp(ev *Event) *Event {
	ev.Time = time.Now()
	ev.ID = h.newID(ev.Time)
	return ev.finish()
}

// stampLine is stamp for a line said here: in a cluster it also names the
// line with this node's name (see [Event.Key]), so that it has the same
// name on every node and in the store.
func (h *Hub) stampLine(ev *Event) *Event {
	h.stamp(ev)
	if h.node != "" {
		ev.Node, ev.NodeID = h.node, ev.ID
	}
	return ev
}

// newID returns an event or client ID: the microseconds since the epoch
// at now, or one more than the last ID given if that is not less. IDs
// only grow, across restarts too (a restarted node starts from its
// clock, past every ID it gave before, as long as the clock does not go
// back by more than the node was down), so that a line's key (see
// [LineKey]) is never given to another line, even by a node that keeps
// its history on disk. A microsecond is finer than lines come: the ID is
// the time it was given, give or take a few.
func (h *Hub) newID(now time.Time) uint64 {
	t := uint64(max(now.UnixMicro(), 0))
	for {
		last := h.nextID.Load()
		id := max(last+1, t)
		if h.nextID.CompareAndSwap(last, id) {
			return id
		}
	}
}

// sawID makes every ID given from now on greater than id, an ID of this
// node's read back from the store: a clock set back while the node was
// down cannot make it give an ID twice.
func (h *Hub) sawID(id uint64) {
	for {
		last := h.nextID.Load()
		if last >= id || h.nextID.CompareAndSwap(last, id) {
			return
		}
	}
}

// notice builds a one-member event of kind KindSystem or KindError.
func (h *Hub) notice(k Kind, text string) *Event {
	return (&Event{Kind: k, Time: time.Now(), Text: text}).finish()
}

// hostOf returns the host part of a "host:port" address.
func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
