package boltdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
)

// DamagedError is a store file that reservist will not open: its structure is broken
// (truncated, zeroed or overwritten pages), and bbolt would crash on it.
type DamagedError struct {
	Path   string
	Reason string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("%s is damaged (%s). Move it aside (mv %s %s.damaged) and start again: the outbox starts empty, and the actions the damaged file held are not carried out (inspect them with bbolt's own tools, `bbolt check` and `bbolt keys FILE actions`)",
		e.Path, e.Reason, e.Path, e.Path)
}

// The layout of a bbolt file (go.etcd.io/bbolt, file format version 2), which the check
// reads on its own, through ReadAt, before bbolt maps the file into memory: bbolt trusts
// what it maps, and a page id past the end of a truncated file is a SIGBUS, a zeroed page
// a panic. The check follows exactly the pages bbolt would follow, so that once it passes
// every page bbolt reads lies inside the file, has a known type and holds its elements.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	elementSize    = 16 // a branch element (pos, ksize u32, pgid u64) or a leaf's (flags, pos, ksize, vsize u32)
	metaSize       = 64 // magic, version, pageSize, flags u32; root, sequence, freelist, pgid, txid u64; then the checksum
	bucketHeader   = 16 // a bucket value: root pgid u64, sequence u64; an inline page follows when root is 0

	branchPage   = 0x01
	leafPage     = 0x02
	freelistPage = 0x10
	bucketLeaf   = 0x01
	noFreelist   = ^uint64(0)

	maxDepth = 64 // far beyond any real tree: deeper is a loop or garbage
)

// native is bbolt's byte order: it writes its structures as the machine lays them out.
var native = binary.NativeEndian

// checkFile refuses a store file whose structure bbolt cannot read safely. A missing or
// empty file is fine: bbolt creates it.
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("outbox: %s is not a regular file", path)
	}
	if fi.Size() == 0 {
		return nil
	}
	c := &checker{r: f, size: fi.Size()}
	if reason := c.check(); reason != "" {
		return &DamagedError{Path: path, Reason: reason}
	}
	return nil
}

// checker walks a bbolt file from its meta page down every page it references.
type checker struct {
	r    io.ReaderAt
	size int64
	ps   uint64   // page size
	hwm  uint64   // high-water mark: pages in use are below it
	seen []bool   // tree pages visited, by id
	free []uint64 // the freelist's pages
}

// damage is a reason a file is damaged, carried up the walk by panic and turned back
// into the reason at the top: the walk is deep, and every step can find one.
type damage string

func (c *checker) fail(format string, args ...any) { panic(damage(fmt.Sprintf(format, args...))) }

// check returns why the file is damaged, or "" when bbolt can read it.
func (c *checker) check() (reason string) {
	defer func() {
		if r := recover(); r != nil {
			d, ok := r.(damage)
			if !ok {
				panic(r)
			}
			reason = string(d)
		}
	}()
	m := c.meta()
	c.hwm = m.pgid
	if c.hwm < 2 || c.hwm > uint64(c.size)/c.ps {
		c.fail("it is truncated: its pages run to %d bytes, the file has %d", m.pgid*c.ps, c.size)
	}
	c.seen = make([]bool, c.hwm)
	c.seen[0], c.seen[1] = true, true
	if m.freelist != noFreelist {
		c.freelist(m.freelist)
	}
	c.tree(m.root, 0, "the root bucket")
	for _, f := range c.free {
		if c.seen[f] {
			c.fail("page %d is both in use and listed as free", f)
		}
	}
	return ""
}

type meta struct {
	pageSize, version, magic uint32
	root, freelist, pgid     uint64
	txid                     uint64
	ok                       bool // magic, version and checksum hold
}

// parseMeta reads the meta of a page that starts at b.
func parseMeta(b []byte) meta {
	if len(b) < pageHeaderSize+metaSize+8 {
		return meta{}
	}
	m := b[pageHeaderSize:]
	out := meta{
		magic:    native.Uint32(m[0:]),
		version:  native.Uint32(m[4:]),
		pageSize: native.Uint32(m[8:]),
		root:     native.Uint64(m[16:]),
		freelist: native.Uint64(m[32:]),
		pgid:     native.Uint64(m[40:]),
		txid:     native.Uint64(m[48:]),
	}
	h := fnv.New64a()
	h.Write(m[:metaSize-8])
	out.ok = out.magic == boltMagic && out.version == boltVersion && h.Sum64() == native.Uint64(m[metaSize-8:])
	return out
}

// meta finds the page size and returns the meta bbolt would use: the valid one of the two
// with the higher transaction id.
func (c *checker) meta() meta {
	buf := make([]byte, 4096)
	read := func(off int64) meta {
		clear(buf)
		n, _ := c.r.ReadAt(buf, off)
		return parseMeta(buf[:n])
	}
	m0 := read(0)
	ps := uint64(m0.pageSize)
	if !m0.ok {
		// As bbolt does: look for the second meta page at each possible page size.
		ps = 0
		for i := range 15 {
			off := int64(1024) << i
			if off >= c.size-1024 {
				break
			}
			if m := read(off); m.ok {
				ps = uint64(m.pageSize)
				break
			}
		}
	}
	if ps == 0 {
		c.fail("neither of its two meta pages is valid")
	}
	if ps < 1024 || ps > 1<<24 || ps&(ps-1) != 0 {
		c.fail("its page size %d is impossible", ps)
	}
	c.ps = ps
	if uint64(c.size) < 2*ps {
		c.fail("it is shorter than its two meta pages")
	}
	m0, m1 := read(0), read(int64(ps))
	a, b := m0, m1
	if m1.txid > m0.txid {
		a, b = m1, m0
	}
	switch {
	case a.ok:
		return a
	case b.ok:
		return b
	}
	c.fail("neither of its two meta pages is valid")
	return meta{}
}

// page reads page id with its overflow pages, checking that they lie below the high-water
// mark and that no other reference reached them first.
func (c *checker) page(id uint64, what string) []byte {
	if id < 2 || id >= c.hwm {
		c.fail("%s points to page %d, outside the file's %d pages", what, id, c.hwm)
	}
	hdr := make([]byte, pageHeaderSize)
	if _, err := c.r.ReadAt(hdr, int64(id*c.ps)); err != nil {
		c.fail("page %d cannot be read: %v", id, err)
	}
	if got := native.Uint64(hdr); got != id {
		c.fail("page %d says it is page %d (zeroed or overwritten)", id, got)
	}
	overflow := uint64(native.Uint32(hdr[12:]))
	if overflow >= c.hwm-id {
		c.fail("page %d runs past the end of the file", id)
	}
	for p := id; p <= id+overflow; p++ {
		if c.seen[p] {
			c.fail("page %d is reached twice", p)
		}
		c.seen[p] = true
	}
	b := make([]byte, (overflow+1)*c.ps)
	if _, err := c.r.ReadAt(b, int64(id*c.ps)); err != nil {
		c.fail("page %d cannot be read: %v", id, err)
	}
	return b
}

// freelist checks the page that lists the free pages.
func (c *checker) freelist(id uint64) {
	p := c.page(id, "the freelist")
	if flags := native.Uint16(p[8:]); flags != freelistPage {
		c.fail("the freelist page %d has type %#x, not a freelist", id, flags)
	}
	start, count := uint64(pageHeaderSize), uint64(native.Uint16(p[10:]))
	if count == 0xFFFF { // the count is too big for the header: the first id is the count
		count, start = native.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > (uint64(len(p))-start)/8 {
		c.fail("the freelist page %d claims %d free pages, more than it holds", id, count)
	}
	for i := range count {
		f := native.Uint64(p[start+8*i:])
		if f < 2 || f >= c.hwm {
			c.fail("the freelist lists page %d, outside the file's %d pages", f, c.hwm)
		}
		c.free = append(c.free, f)
	}
}

// tree checks the page id, a bucket's root or a branch's child, and everything below it.
func (c *checker) tree(id uint64, depth int, what string) {
	c.node(c.page(id, what), id, depth, false)
}

// node checks one branch or leaf page p: its elements lie inside it, a branch's children
// and a leaf's sub-buckets are sound.
func (c *checker) node(p []byte, id uint64, depth int, inline bool) {
	if depth > maxDepth {
		c.fail("page %d is nested %d levels deep: the tree loops", id, depth)
	}
	if len(p) < pageHeaderSize {
		c.fail("an inline bucket in page %d is too short", id)
	}
	flags, count := native.Uint16(p[8:]), uint64(native.Uint16(p[10:]))
	switch {
	case flags == branchPage && !inline:
	case flags == leafPage:
	default:
		c.fail("page %d has type %#x where a branch or leaf page belongs", id, flags)
	}
	size := uint64(len(p))
	if pageHeaderSize+count*elementSize > size {
		c.fail("page %d claims %d elements, more than it holds", id, count)
	}
	if flags == branchPage && count == 0 {
		c.fail("branch page %d is empty", id)
	}
	for i := range count {
		off := pageHeaderSize + i*elementSize
		e := p[off : off+elementSize]
		if flags == branchPage {
			pos, ksize := uint64(native.Uint32(e[0:])), uint64(native.Uint32(e[4:]))
			if off+pos+ksize > size {
				c.fail("a key of page %d lies outside it", id)
			}
			c.tree(native.Uint64(e[8:]), depth+1, fmt.Sprintf("branch page %d", id))
			continue
		}
		eflags := native.Uint32(e[0:])
		pos, ksize, vsize := uint64(native.Uint32(e[4:])), uint64(native.Uint32(e[8:])), uint64(native.Uint32(e[12:]))
		if off+pos+ksize+vsize > size {
			c.fail("a key or value of page %d lies outside it", id)
		}
		if eflags&bucketLeaf == 0 {
			continue
		}
		v := p[off+pos+ksize : off+pos+ksize+vsize]
		if len(v) < bucketHeader {
			c.fail("a bucket in page %d has a short header", id)
		}
		if root := native.Uint64(v); root != 0 {
			c.tree(root, depth+1, fmt.Sprintf("a bucket in page %d", id))
		} else {
			c.node(v[bucketHeader:], id, depth+1, true)
		}
	}
}

// protect runs fn with a fault on bad memory (a page of a damaged file that bbolt maps)
// turned into a panic, and any panic into an error, so that a store that goes bad while
// reservist runs fails its operations instead of the process.
func protect(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the store's file is damaged: %v", r)
		}
	}()
	return fn()
}
