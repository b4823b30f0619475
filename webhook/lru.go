package webhook

import "sync"

// lru is a bounded least-recently-used cache, safe for concurrent use. The
// hot path keeps decoded cookies and verified tokens in it so that a
// remembered user costs a map lookup, not a decryption.
type lru[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	items map[K]*lruNode[K, V]
	// head is the most recently used node, tail the least.
	head, tail *lruNode[K, V]
}

type lruNode[K comparable, V any] struct {
	key        K
	value      V
	prev, next *lruNode[K, V]
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, items: make(map[K]*lruNode[K, V], max/4)}
}

// Get returns the value of key and marks it recently used.
func (c *lru[K, V]) Get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	c.moveToFront(n)
	return n.value, true
}

// Add stores key, evicting the least recently used entry when full.
func (c *lru[K, V]) Add(key K, value V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.items[key]; ok {
		n.value = value
		c.moveToFront(n)
		return
	}
	if len(c.items) >= c.max && c.tail != nil {
		old := c.tail
		c.unlink(old)
		delete(c.items, old.key)
	}
	n := &lruNode[K, V]{key: key, value: value}
	c.items[key] = n
	c.pushFront(n)
}

// Remove forgets key.
func (c *lru[K, V]) Remove(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.items[key]; ok {
		c.unlink(n)
		delete(c.items, key)
	}
}

// Len is the number of entries.
func (c *lru[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

func (c *lru[K, V]) moveToFront(n *lruNode[K, V]) {
	if c.head == n {
		return
	}
	c.unlink(n)
	c.pushFront(n)
}

func (c *lru[K, V]) pushFront(n *lruNode[K, V]) {
	n.prev = nil
	n.next = c.head
	if c.head != nil {
		c.head.prev = n
	}
	c.head = n
	if c.tail == nil {
		c.tail = n
	}
}

func (c *lru[K, V]) unlink(n *lruNode[K, V]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		c.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		c.tail = n.prev
	}
	n.prev, n.next = nil, nil
}
