{{/* The names are fixed: the operator looks its objects up by name (the
ServiceAccount mfa-challenge, the Deployment mfa-challenge), so one release
per cluster. */}}

{{- define "mfa-operator.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: mfa-operator
{{- end }}

{{/* Labels of every object, on top of its own: who manages it. */}}
{{- define "mfa-operator.releaseLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "mfa-operator.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else -}}
{{ printf "%s:%s" .Values.image.repository $tag }}
{{- end -}}
{{- end }}
