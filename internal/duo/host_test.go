package duo_test

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duo"
)

func TestValidAPIHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"api-abcd1234.duosecurity.com", true},
		{"api-e3b07386.duosecurity.com", true},
		{"api-abcd1234.duofederal.com", true},
		{"api-abcd1234.duo.com", true},
		{"API-ABCD1234.DUOSECURITY.COM", false},
		{"api-abcd1234.duosecurity.com:443", false},
		{"https://api-abcd1234.duosecurity.com", false},
		{"api-abcd1234.duosecurity.com/", false},
		{"admin-abcd1234.duosecurity.com", false},
		{"api-.duosecurity.com", false},
		{"api-abcd1234.evil.com", false},
		{"api-abcd1234.duosecurity.com.evil.com", false},
		{"x.api-abcd1234.duosecurity.com", false},
		{"api-ab_cd1234.duosecurity.com", false},
		{"127.0.0.1:8443", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			NewWithT(t).Expect(duo.ValidAPIHost(tt.host)).To(Equal(tt.want))
		})
	}
}
