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
		{5 * mb, 32 * mb, 640},
		{3 * mb, 32 * mb, 800}, // the smallest heap goal, 4 MB x 8, is the headroom
		{32 * mb, 32 * mb, 100},
		{200 * mb, 32 * mb, 100},
		{0, 32 * mb, 800},
		{20 * mb, 32 * mb, 160},
		{3 * mb, 2 * mb, 100},
		{10 * mb, 64 * mb, 640},
		{1 * mb, 64 * mb, 1600},
	}
	for _, c := range cases {
		NewWithT(t).Expect(gcPercent(c.live, c.headroom)).To(Equal(c.want), "live %d MB", c.live/mb)
	}
}
