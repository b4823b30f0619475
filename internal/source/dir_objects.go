package source

import "github.com/mfa-operator/mfa-operator/api/v1alpha1"

// ReadObjects returns the MFAPolicies and MFAProviders of a config
// directory, as the standalone server reads them (for `mfa-operator
// users`).
func ReadObjects(dir string) ([]v1alpha1.MFAPolicy, []v1alpha1.MFAProvider, error) {
	o, err := readConfigDir(dir)
	if err != nil {
		return nil, nil, err
	}
	return o.policies, o.providers, nil
}
