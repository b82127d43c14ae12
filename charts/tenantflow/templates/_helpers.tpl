{{- define "tenantflow.name" -}}tenantflow{{- end -}}
{{- define "tenantflow.labels" -}}
app.kubernetes.io/name: tenantflow
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "tenantflow.selector" -}}
app.kubernetes.io/name: tenantflow
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "tenantflow.fullname" -}}{{ .Release.Name }}-operator{{- end -}}
