{{/*
Named templates of the modelops chart. Every name is prefixed with "modelops." so that it
cannot clash with a parent chart's templates.
*/}}

{{/* modelops.name is the chart name, or nameOverride. */}}
{{- define "modelops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
modelops.fullname names the release's objects: fullnameOverride, else the release name when
it already contains the chart name ("modelops"), else "<release>-<chart>".
*/}}
{{- define "modelops.fullname" -}}
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

{{/* modelops.chart is "<name>-<version>" for the helm.sh/chart label. */}}
{{- define "modelops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
modelops.selectorLabels select the operator's pods. They never change between releases
(a Deployment's selector is immutable), so nothing version-like belongs here.
*/}}
{{- define "modelops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* modelops.labels go on every object of the release. */}}
{{- define "modelops.labels" -}}
{{ include "modelops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: modelops
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "modelops.chart" . }}
{{- end }}

{{/* modelops.serviceAccountName is the ServiceAccount the operator runs as. */}}
{{- define "modelops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* modelops.image is the operator image reference: a digest, when given, wins over the tag. */}}
{{- define "modelops.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
modelops.watchedNamespaces is the list of namespaces a namespaced install watches, as JSON
(watch.namespaces, or the release namespace when that list is empty).
*/}}
{{- define "modelops.watchedNamespaces" -}}
{{- if .Values.watch.namespaces }}
{{- toJson (uniq .Values.watch.namespaces) }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
modelops.operatorRules are the operator's permissions, the same in a ClusterRole (watching
every namespace) and in the Role of each watched namespace. Least privilege: only the verbs
the code uses (operator/modelops/k8s/: its requests and its cache's watches), no wildcards,
nothing on Secrets or ConfigMaps. No list/watch on Namespaces or CRDs: the cache watches the
namespaces it is given, and kopf watches nothing (its cluster scanning is disabled).
*/}}
{{- define "modelops.operatorRules" -}}
# Application: the four kinds. The operator's cache lists and watches them; get confirms.
- apiGroups: ["modelops.dev"]
  resources: ["models", "driftpolicies"]
  verbs: ["get", "list", "watch"]
# Application: ModelVersions are registered from successful TrainingRuns (create), and labelled
# (patch) when retired or served.
- apiGroups: ["modelops.dev"]
  resources: ["modelversions"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Application: a DriftPolicy's retrain action creates TrainingRuns.
- apiGroups: ["modelops.dev"]
  resources: ["trainingruns"]
  verbs: ["get", "list", "watch", "create"]
# Application: the operator reports what it observed; it never writes a spec.
- apiGroups: ["modelops.dev"]
  resources: ["models/status", "modelversions/status", "trainingruns/status", "driftpolicies/status"]
  verbs: ["patch"]
# Application: children carry ownerReferences with blockOwnerDeletion to their Model or
# TrainingRun; clusters with the OwnerReferencesPermissionEnforcement admission plugin (OpenShift)
# allow that only to whoever may update the owner's finalizers.
- apiGroups: ["modelops.dev"]
  resources: ["models/finalizers", "trainingruns/finalizers"]
  verbs: ["update"]
# Application: training Jobs and artifact-retirement Jobs, written with server-side apply
# (create when new, then patch), watched to follow their progress; get tells whose a taken
# name is.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Application: one serving Deployment per served version (watched; get tells whose a taken
# name is); removed when a version stops serving.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Application: a Model's stable Service and one Service per served version (watched, as above).
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Application: training pods hold the trainer's result (termination message); serving pods'
# readiness and start times feed rollouts and drift windows. Read only (the cache watches them).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Application and framework: Events on the four kinds (kubectl describe); a repeat of
# the same Event is read and its count patched (aggregation); kopf posts errors too.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["get", "create", "patch"]
{{- end }}

{{/*
modelops.crdAnnotations are the annotations of the chart's CRDs, which keep them (and so every
Model, ModelVersion, TrainingRun and DriftPolicy) from being deleted as a side effect:
crds.keep for `helm uninstall`, crds.preventPrune for Argo CD and Flux pruning, then
crds.annotations. Included by the generated templates/crds/*.yaml.
*/}}
{{- define "modelops.crdAnnotations" -}}
{{- $annotations := dict }}
{{- if .Values.crds.keep }}
{{- $_ := set $annotations "helm.sh/resource-policy" "keep" }}
{{- end }}
{{- if .Values.crds.preventPrune }}
{{- $_ := set $annotations "argocd.argoproj.io/sync-options" "Prune=false,Delete=false" }}
{{- $_ := set $annotations "kustomize.toolkit.fluxcd.io/prune" "disabled" }}
{{- end }}
{{- with .Values.crds.annotations }}
{{- $annotations = merge (deepCopy .) $annotations }}
{{- end }}
{{- if $annotations }}
{{- toYaml $annotations }}
{{- end }}
{{- end }}
