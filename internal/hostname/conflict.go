package hostname

import "fmt"

// ConflictText names the field, the host and the other policy of one
// conflict of a policy listing hosts: what the controller and
// `mfa-operator check` say.
func ConflictText(hosts []string, own, other Claim) string {
	field := "spec.hosts"
	for i, h := range hosts {
		if p, err := NormalizePattern(h); err == nil && Name(p) == own.Pattern {
			field = fmt.Sprintf("spec.hosts[%d]", i)
			break
		}
	}
	how := "also listed by"
	switch {
	case own.Pattern == other.Pattern:
	case Contains(other.Pattern, own.Pattern):
		how = fmt.Sprintf("inside %q of", other.Pattern)
	default:
		how = fmt.Sprintf("over %q of", other.Pattern)
	}
	where := ""
	if other.Namespace != own.Namespace {
		where = " (another namespace)"
	}
	return fmt.Sprintf("%s: host %q is %s MFAPolicy %s%s", field, own.Pattern, how, other.Policy, where)
}
