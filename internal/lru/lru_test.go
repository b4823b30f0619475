package lru

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestCacheForgetsTheLeastRecentlyUsed(t *testing.T) {
	g := NewWithT(t)
	c := New[string, int](2)
	c.Add("a", 1)
	c.Add("b", 2)
	v, ok := c.Get("a") // b is now the least recently used
	g.Expect(ok).To(BeTrue())
	g.Expect(v).To(Equal(1))
	c.Add("c", 3)
	g.Expect(c.Len()).To(Equal(2))
	_, ok = c.Get("b")
	g.Expect(ok).To(BeFalse(), "b was forgotten")
	_, ok = c.Get("a")
	g.Expect(ok).To(BeTrue())

	c.Add("c", 30) // replaces, and marks c used
	c.Add("d", 4)  // forgets a
	v, _ = c.Get("c")
	g.Expect(v).To(Equal(30))
	_, ok = c.Get("a")
	g.Expect(ok).To(BeFalse())

	c.Remove("c")
	c.Remove("missing")
	g.Expect(c.Len()).To(Equal(1))
	_, ok = c.Get("c")
	g.Expect(ok).To(BeFalse())
}

func TestCacheOfOneKeepsTheLast(t *testing.T) {
	g := NewWithT(t)
	c := New[int, string](1)
	for i := range 5 {
		c.Add(i, "v")
	}
	g.Expect(c.Len()).To(Equal(1))
	_, ok := c.Get(4)
	g.Expect(ok).To(BeTrue())
}

func TestCacheLookupsAllocateNothing(t *testing.T) {
	c := New[string, int](10)
	c.Add("a", 1)
	if n := testing.AllocsPerRun(100, func() { c.Get("a"); c.Add("a", 2) }); n != 0 {
		t.Fatalf("Get and Add of a present key: %v allocations", n)
	}
}
