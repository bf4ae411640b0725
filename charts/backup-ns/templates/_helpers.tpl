{{/* Names: the release name keeps several installs in one namespace apart; "backup-ns" is the default. */}}
{{- define "backup-ns.name" -}}
{{- if eq .Release.Name "backup-ns" -}}backup-ns{{- else -}}{{ printf "%s-backup-ns" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "backup-ns.labels" -}}
app.kubernetes.io/name: backup-ns
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
