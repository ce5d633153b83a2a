{{/* Object names: "heritage-audio-api" for a release named heritage-audio. */}}
{{- define "heritage-audio.fullname" -}}
{{- if contains "heritage-audio" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-heritage-audio" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "heritage-audio.selectorLabels" -}}
app.kubernetes.io/name: heritage-audio
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{- define "heritage-audio.labels" -}}
{{ include "heritage-audio.selectorLabels" . }}
app.kubernetes.io/part-of: heritage-audio
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* The pod and container settings every workload shares (as the systemd hardening). */}}
{{- define "heritage-audio.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "heritage-audio.container" -}}
image: {{ printf "%s:%s" .Values.image.repository .Values.image.tag | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
envFrom:
  - configMapRef:
      name: {{ include "heritage-audio.fullname" . }}-config
  - secretRef:
      name: {{ .Values.existingSecret }}
{{- end -}}

{{- define "heritage-audio.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  privileged: false
  capabilities:
    drop:
      - ALL
{{- end -}}

{{- define "heritage-audio.volumes" -}}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 1Gi
{{- if .data }}
  - name: data
    persistentVolumeClaim:
      claimName: {{ include "heritage-audio.fullname" .root }}-data
{{- end }}
{{- end -}}

{{- define "heritage-audio.mounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- if .data }}
  - name: data
    mountPath: /var/lib/heritage-audio
{{- end }}
{{- end -}}
