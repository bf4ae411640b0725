{{/* Names follow the original chart's helpers, so `helm upgrade` from it keeps every object's name. */}}
{{- define "backup-ns.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "backup-ns.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "backup-ns.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "backup-ns.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "backup-ns.selectorLabels" -}}
app.kubernetes.io/name: {{ include "backup-ns.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "backup-ns.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "backup-ns.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The one image reference; the tag defaults to the chart's appVersion. */}}
{{- define "backup-ns.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* "true" when the original chart's envData drives the backup (BAK_* env, no plan file). */}}
{{- define "backup-ns.envMode" -}}
{{- if .Values.envData -}}true{{- end -}}
{{- end -}}

{{/* The plan ConfigMap's name: an existing one, or the chart's own. */}}
{{- define "backup-ns.planConfigMap" -}}
{{- default (printf "%s-plan" (include "backup-ns.fullname" .)) .Values.existingPlanConfigMap -}}
{{- end -}}

{{/* True when the user's own volumes already define the lock volume (original-style values do). */}}
{{- define "backup-ns.userHasLockVolume" -}}
{{- range .Values.volumes -}}{{- if eq .name "host-backup-locks" -}}true{{- end -}}{{- end -}}
{{- end -}}

{{- define "backup-ns.userHasLockMount" -}}
{{- range .Values.volumeMounts -}}{{- if eq .name "host-backup-locks" -}}true{{- end -}}{{- end -}}
{{- end -}}
