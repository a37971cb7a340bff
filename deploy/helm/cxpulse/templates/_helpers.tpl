{{/* Names and labels shared by every object of the release. */}}
{{- define "cxpulse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cxpulse.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component (worker, wallboard): stable across upgrades. */}}
{{- define "cxpulse.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cxpulse.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Environment every cxpulse container has: the settings file and the secrets by reference. */}}
{{- define "cxpulse.env" -}}
- name: CXPULSE_CONFIG
  value: /etc/cxpulse/settings.yaml
{{- with .Values.secrets.redisUrl }}
{{- if .name }}
- name: CXPULSE_REDIS__URL
  valueFrom:
    secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | default "url" | quote }}}
{{- end }}
{{- end }}
{{- with .Values.secrets.kafkaSaslPassword }}
{{- if .name }}
- name: CXPULSE_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | default "sasl-password" | quote }}}
{{- end }}
{{- end }}
{{- with .Values.secrets.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
