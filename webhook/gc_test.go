package webhook

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestGCPercentGivesTheHeadroom(t *testing.T) {
	const mb = 1 << 20
	cases := []struct {
		live, headroom uint64
		want           int
	}{
		{4 * mb, 32 * mb, 800},
		{3 * mb, 32 * mb, 1060},
		{32 * mb, 32 * mb, 100},
		{200 * mb, 32 * mb, 100},
		{1 * mb, 32 * mb, 2000},
		{0, 32 * mb, 2000},
		{20 * mb, 32 * mb, 160},
	}
	for _, c := range cases {
		NewWithT(t).Expect(gcPercent(c.live, c.headroom)).To(Equal(c.want), "live %d MB", c.live/mb)
	}
}
