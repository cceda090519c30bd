{{/*
Names. Every object is <fullname>-<component>; fullname follows the usual convention
(the release name alone when it already contains the chart name).
*/}}
{{- define "asi-arch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asi-arch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The name of one component's objects. Input: dict "root" $ "component" "engineer". */}}
{{- define "asi-arch.componentName" -}}
{{- printf "%s-%s" (include "asi-arch.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asi-arch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component. Input: dict "root" $ "component" NAME. */}}
{{- define "asi-arch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asi-arch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component. Input: dict "root" $ "component" NAME. */}}
{{- define "asi-arch.labels" -}}
helm.sh/chart: {{ include "asi-arch.chart" .root }}
{{ include "asi-arch.selectorLabels" . }}
app.kubernetes.io/part-of: asi-arch
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "asi-arch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "asi-arch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The service image. Input: dict "root" $ "gpu" BOOL. By digest (repository@sha256:...) when
image.digest (image.gpuDigest for the GPU variant) is set, else by tag.
*/}}
{{- define "asi-arch.image" -}}
{{- $image := .root.Values.image }}
{{- $digest := ternary $image.gpuDigest $image.digest (not (empty .gpu)) }}
{{- if $digest }}
{{- printf "%s@%s" $image.repository $digest }}
{{- else }}
{{- $tag := default .root.Chart.AppVersion $image.tag }}
{{- if .gpu }}{{ $tag = printf "%s%s" $tag $image.gpuSuffix }}{{ end }}
{{- printf "%s:%s" $image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Addresses. NATS and Qdrant: the subchart's Service when it is enabled (the subchart's
fullname, computed the way the official charts compute it), the configured URL otherwise.
*/}}
{{- define "asi-arch.subchartFullname" -}}
{{- $values := index .root.Values .chart }}
{{- if $values.fullnameOverride }}
{{- $values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .chart $values.nameOverride }}
{{- if contains $name .root.Release.Name }}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "asi-arch.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s.%s.svc:4222" (include "asi-arch.subchartFullname" (dict "root" . "chart" "nats")) .Release.Namespace }}
{{- else }}
{{- required "natsUrl is required when nats.enabled is false" .Values.natsUrl }}
{{- end }}
{{- end }}

{{- define "asi-arch.qdrantUrl" -}}
{{- if .Values.qdrant.enabled }}
{{- printf "http://%s.%s.svc:6333" (include "asi-arch.subchartFullname" (dict "root" . "chart" "qdrant")) .Release.Namespace }}
{{- else }}
{{- .Values.qdrantUrl }}
{{- end }}
{{- end }}

{{/* host:port of a component's gRPC Service. Input: dict "root" $ "component" NAME. */}}
{{- define "asi-arch.grpcAddr" -}}
{{- printf "%s.%s.svc:%v" (include "asi-arch.componentName" .) .root.Release.Namespace .root.Values.ports.grpc }}
{{- end }}

{{- define "asi-arch.llmUrl" -}}
{{- if .Values.llm.enabled }}
{{- printf "http://%s.%s.svc:%v/v1" (include "asi-arch.componentName" (dict "root" . "component" "llm")) .Release.Namespace .Values.llm.port }}
{{- else }}
{{- .Values.llm.url }}
{{- end }}
{{- end }}

{{/*
The environment of one service container. Input: dict "root" $ "component" NAME.
Every service: NATS, data dir, its own ports. researcher, judge, analyst: the cognition and
lineage gRPC addresses and the LLM. cognition: Qdrant. engineer: its worker id and job lease
settings, and no other address, since its pods may reach only NATS.
*/}}
{{/* The NATS roles of services/runtime/natsauth.py, space-separated (a test compares them). */}}
{{- define "asi-arch.natsRoles" -}}
operator researcher engineer judge analyst cognition
{{- end }}

{{/* ASI_NATS_USER and ASI_NATS_PASSWORD of one role, from natsAuth's Secret. Input: dict "root" $ "role" NAME. */}}
{{- define "asi-arch.natsLogin" -}}
{{- if .root.Values.natsAuth.enabled }}
- name: ASI_NATS_USER
  value: {{ .role | quote }}
- name: ASI_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.natsAuth.secretName }}
      key: {{ .role }}
{{- end }}
{{- end }}

{{- define "asi-arch.env" -}}
{{- $root := .root }}
{{- $values := index $root.Values .component -}}
- name: ASI_NATS_URL
  value: {{ include "asi-arch.natsUrl" $root | quote }}
{{- include "asi-arch.natsLogin" (dict "root" $root "role" .component) }}
- name: ASI_DATA_DIR
  value: {{ $root.Values.dataDir.path | quote }}
- name: ASI_GRPC_PORT
  value: {{ $root.Values.ports.grpc | quote }}
- name: ASI_METRICS_PORT
  value: {{ $root.Values.ports.metrics | quote }}
{{- with $root.Values.runId }}
- name: ASI_RUN_ID
  value: {{ . | quote }}
{{- end }}
{{- if eq .component "cognition" }}
{{- with include "asi-arch.qdrantUrl" $root }}
- name: ASI_QDRANT_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if has .component (list "researcher" "judge" "analyst") }}
- name: ASI_COGNITION_ADDR
  value: {{ include "asi-arch.grpcAddr" (dict "root" $root "component" "cognition") | quote }}
- name: ASI_LINEAGE_ADDR
  value: {{ include "asi-arch.grpcAddr" (dict "root" $root "component" "analyst") | quote }}
{{- with include "asi-arch.llmUrl" $root }}
- name: ASI_LLM_URL
  value: {{ . | quote }}
- name: ASI_LLM_MODEL
  value: {{ default $root.Values.llm.model $root.Values.llm.servedModelName | quote }}
{{- with $root.Values.llm.apiKeySecret }}
{{- if .name }}
- name: ASI_LLM_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq .component "engineer" }}
- name: ASI_WORKER_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- if has .component (list "engineer" "researcher") }}
{{- /* The researcher creates the jobs consumer (it must exist at zero engineers): same settings. */}}
- name: ASI_JOB_ACK_WAIT_S
  value: {{ $root.Values.engineer.jobAckWaitSeconds | quote }}
- name: ASI_JOB_MAX_DELIVER
  value: {{ $root.Values.engineer.jobMaxDeliver | quote }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* A gRPC health probe on the service's gRPC port. Input: dict "root" $ "probe" MAP. */}}
{{- define "asi-arch.grpcProbe" -}}
grpc:
  port: {{ .root.Values.ports.grpc }}
{{ include "asi-arch.probeTiming" .probe }}
{{- end }}

{{/*
Liveness: the process answers on its gRPC port. Not gRPC health, which is NOT_SERVING while a
service catches up with the log: a service that falls behind turns unready, it is not killed.
*/}}
{{- define "asi-arch.livenessProbe" -}}
tcpSocket:
  port: grpc
{{ include "asi-arch.probeTiming" .probe }}
{{- end }}

{{- define "asi-arch.probeTiming" -}}
periodSeconds: {{ .periodSeconds }}
failureThreshold: {{ .failureThreshold }}
timeoutSeconds: {{ .timeoutSeconds }}
{{- end }}

{{/*
The workload of one service. Input: dict "root" $ "component" NAME, and optionally
"gpu" BOOL, "tmpSizeLimit", "shmSizeLimit", "strategy" (a Deployment strategy type),
"claimPerReplica" BOOL (a StatefulSet whose claim template gives each replica its own data
volume, instead of a Deployment), "topologySpread" MAP (spread replicas over topologyKey),
"autoscaled" BOOL (no replica count: an autoscaler owns it), "mostReplicas" (the most
replicas an autoscaler may run, instead of <component>.replicas).
*/}}
{{- define "asi-arch.deployment" -}}
{{- $root := .root }}
{{- $values := index $root.Values .component }}
{{- $name := include "asi-arch.componentName" . }}
{{- $persistence := $values.persistence }}
{{- if and $persistence.enabled (empty .claimPerReplica) (not (has "ReadWriteMany" $persistence.accessModes)) (gt (int (default $values.replicas .mostReplicas)) 1) }}
{{- fail (printf "%s.persistence: one claim that is not ReadWriteMany cannot serve several replicas (on different nodes they never all attach it): list ReadWriteMany in %s.persistence.accessModes, or run one replica" .component .component) }}
{{- end }}
{{- $gpu := and .gpu $values.gpu.enabled }}
apiVersion: apps/v1
kind: {{ ternary "StatefulSet" "Deployment" (not (empty .claimPerReplica)) }}
metadata:
  name: {{ $name }}
  labels:
    {{- include "asi-arch.labels" . | nindent 4 }}
spec:
  {{- if empty .autoscaled }}
  replicas: {{ $values.replicas }}
  {{- end }}
  {{- if .claimPerReplica }}
  serviceName: {{ $name }}
  # Workers share nothing but the queue: start and stop them all at once.
  podManagementPolicy: Parallel
  {{- end }}
  {{- with .strategy }}
  strategy:
    type: {{ . }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "asi-arch.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "asi-arch.labels" . | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $root.Values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "asi-arch.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $values.runtimeClassName }}
      runtimeClassName: {{ . }}
      {{- end }}
      {{- with .topologySpread }}
      topologySpreadConstraints:
        - maxSkew: {{ .maxSkew }}
          topologyKey: {{ .topologyKey }}
          whenUnsatisfiable: {{ .whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "asi-arch.selectorLabels" $ | nindent 14 }}
      {{- end }}
      terminationGracePeriodSeconds: 30
      containers:
        - name: {{ .component }}
          image: {{ include "asi-arch.image" (dict "root" $root "gpu" $gpu) | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: [{{ .component | quote }}]
          env:
            {{- include "asi-arch.env" . | nindent 12 }}
          ports:
            - name: grpc
              containerPort: {{ $root.Values.ports.grpc }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $root.Values.ports.metrics }}
              protocol: TCP
          startupProbe:
            {{- include "asi-arch.grpcProbe" (dict "root" $root "probe" $root.Values.probes.startup) | nindent 12 }}
          readinessProbe:
            {{- include "asi-arch.grpcProbe" (dict "root" $root "probe" $root.Values.probes.readiness) | nindent 12 }}
          livenessProbe:
            {{- include "asi-arch.livenessProbe" (dict "probe" $root.Values.probes.liveness) | nindent 12 }}
          securityContext:
            {{- toYaml (mergeOverwrite (deepCopy $root.Values.containerSecurityContext) (deepCopy (default dict $values.containerSecurityContext))) | nindent 12 }}
          resources:
            {{- $resources := deepCopy (default dict $values.resources) }}
            {{- if $gpu }}
            {{- $limits := merge (dict $values.gpu.resourceName $values.gpu.count) (default dict $resources.limits) }}
            {{- $_ := set $resources "limits" $limits }}
            {{- end }}
            {{- toYaml $resources | nindent 12 }}
          volumeMounts:
            - name: data
              mountPath: {{ $root.Values.dataDir.path }}
            - name: tmp
              mountPath: /tmp
            {{- if .shmSizeLimit }}
            - name: shm
              mountPath: /dev/shm
            {{- end }}
      volumes:
        {{- if empty .claimPerReplica }}
        - name: data
          {{- if $values.persistence.enabled }}
          persistentVolumeClaim:
            claimName: {{ default $name $values.persistence.existingClaim }}
          {{- else }}
          emptyDir:
            sizeLimit: {{ $root.Values.dataDir.sizeLimit }}
          {{- end }}
        {{- end }}
        - name: tmp
          emptyDir:
            sizeLimit: {{ default $root.Values.tmp.sizeLimit .tmpSizeLimit }}
        {{- if .shmSizeLimit }}
        - name: shm
          emptyDir:
            medium: Memory
            sizeLimit: {{ .shmSizeLimit }}
        {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  {{- if .claimPerReplica }}
  volumeClaimTemplates:
    - metadata:
        name: data
        labels:
          {{- include "asi-arch.selectorLabels" . | nindent 10 }}
      spec:
        accessModes:
          {{- toYaml $values.persistence.accessModes | nindent 10 }}
        {{- with $values.persistence.storageClass }}
        storageClassName: {{ . | quote }}
        {{- end }}
        resources:
          requests:
            storage: {{ $values.persistence.size }}
  {{- end }}
{{- end }}

{{/*
"true" when engineers get a claim each (a StatefulSet's claim template): persistence on, not
ReadWriteMany, no existing claim. A shared ReadWriteMany claim serves them all otherwise.
*/}}
{{- define "asi-arch.engineerClaimPerReplica" -}}
{{- $persistence := .Values.engineer.persistence }}
{{- if and $persistence.enabled (not (has "ReadWriteMany" $persistence.accessModes)) (not $persistence.existingClaim) }}true{{ end }}
{{- end }}

{{/*
A PodDisruptionBudget for a component with more than one replica: a drain takes at most
maxUnavailable of them at a time. Input: dict "root" $ "component" NAME "replicas" N.
*/}}
{{- define "asi-arch.pdb" -}}
{{- if and .root.Values.podDisruptionBudget.enabled (gt (int .replicas) 1) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "asi-arch.componentName" . }}
  labels:
    {{- include "asi-arch.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "asi-arch.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/*
The Service of one component. Input: dict "root" $ "component" NAME "grpc" BOOL.
With grpc: a ClusterIP Service other services dial. Without: a headless Service that only
lets the ServiceMonitor find every pod's metrics port.
*/}}
{{- define "asi-arch.service" -}}
{{- $root := .root }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "asi-arch.componentName" . }}
  labels:
    {{- include "asi-arch.labels" . | nindent 4 }}
    asi-arch.io/metrics: "true"
spec:
  {{- if .grpc }}
  type: ClusterIP
  {{- else }}
  clusterIP: None
  {{- end }}
  selector:
    {{- include "asi-arch.selectorLabels" . | nindent 4 }}
  ports:
    {{- if .grpc }}
    - name: grpc
      port: {{ $root.Values.ports.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    {{- end }}
    - name: metrics
      port: {{ $root.Values.ports.metrics }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
{{- end }}

{{/* The data claim of one component, when its persistence is on without an existing claim. */}}
{{- define "asi-arch.pvc" -}}
{{- $values := index .root.Values .component }}
{{- if and $values.persistence.enabled (not $values.persistence.existingClaim) }}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include "asi-arch.componentName" . }}
  labels:
    {{- include "asi-arch.labels" . | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
spec:
  accessModes:
    {{- toYaml $values.persistence.accessModes | nindent 4 }}
  {{- with $values.persistence.storageClass }}
  storageClassName: {{ . | quote }}
  {{- end }}
  resources:
    requests:
      storage: {{ $values.persistence.size }}
{{- end }}
{{- end }}
