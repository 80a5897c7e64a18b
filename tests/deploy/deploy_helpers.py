"""Reading the deployment files the way their tools would, offline.

- `render(dir)`: a small kustomize (resources, namespace, labels, images,
  replicas, strategic-merge patches) so the manifests can be validated as
  they would be applied; tests compare it with `kubectl kustomize` when that
  binary exists.
- `nginx_locations(path)`: the location blocks of deploy/nginx.conf.
- `service_routes(name)`: the @api routes a service class serves, read from
  the code itself.
"""
import copy
import importlib
import inspect
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
EXPECTED_SERVICES = ("booking", "checkin", "entry")
PORT = 8000
PLATFORM_PATHS = {"/health/live", "/health/ready", "/openapi.json", "/metrics"}


# -- services and their routes ------------------------------------------------

def service_names():
    """The three services, plus any other package under services/ with a service.py."""
    found = {p.parent.name for p in (ROOT / "services").glob("*/service.py")}
    return sorted(set(EXPECTED_SERVICES) | found)


def service_exists(name):
    return (ROOT / "services" / name / "service.py").exists()


def service_classes(module):
    """Classes a `nameko run <module>` would start: a `name` and entrypoints."""
    from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
    found = []
    for obj in vars(module).values():
        if not (inspect.isclass(obj) and obj.__module__ == module.__name__
                and isinstance(getattr(obj, "name", None), str)):
            continue
        if any(getattr(m, ENTRYPOINT_EXTENSIONS_ATTR, None) for _, m in inspect.getmembers(obj)):
            found.append(obj)
    return found


def api_entrypoints(cls):
    """[(method, path, method name)] of the class's @api routes (inherited included)."""
    from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
    from shared.http import ApiEntrypoint
    routes = []
    for attr, member in inspect.getmembers(cls):
        for ep in getattr(member, ENTRYPOINT_EXTENSIONS_ATTR, ()) or ():
            if isinstance(ep, ApiEntrypoint):
                routes.append((ep.method.upper(), ep.url, attr))
    return routes


def service_spec(name):
    """What the image is told to run: `services.<name>.service:<Class>`
    (module:Class, so nameko starts that class alone, whatever the module imports)."""
    module = importlib.import_module("services.%s.service" % name)
    classes = [c for c in service_classes(module) if c.name == name]
    assert len(classes) == 1, "services/%s/service.py must define one service named %r" % (name, name)
    return "%s:%s" % (module.__name__, classes[0].__name__)


def service_routes(name):
    """{(method, path)} of the public API routes service `name` serves."""
    module = importlib.import_module("services.%s.service" % name)
    routes = set()
    for cls in service_classes(module):
        routes |= {(m, p) for m, p, _ in api_entrypoints(cls) if p not in PLATFORM_PATHS}
    return routes


def sample_path(path):
    """A concrete URL path for a werkzeug rule: /v1/x/<id>/y -> /v1/x/x1/y."""
    return re.sub(r"<(?:[^:>]+:)?(\w+)>", r"\g<1>1", path)


# -- YAML and kustomize -------------------------------------------------------

def load_docs(path):
    with open(path) as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


NAMESPACED_NOT = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
                  "StorageClass", "CustomResourceDefinition", "IngressClass"}
SUPPORTED_KEYS = {"apiVersion", "kind", "namespace", "labels", "resources", "images",
                  "replicas", "patches", "components"}


def kustomization(directory):
    return load_docs(pathlib.Path(directory) / "kustomization.yaml")[0]


def resource_files(directory):
    """Files a kustomization names, recursively (directories and components through theirs)."""
    directory = pathlib.Path(directory)
    files = []
    k = kustomization(directory)
    for entry in list(k.get("resources", [])) + list(k.get("components", [])):
        target = (directory / entry).resolve()
        if target.is_dir():
            files += resource_files(target)
        else:
            files.append(target)
    files += [(directory / p["path"]).resolve() for p in k.get("patches", ())]
    return files


def render(directory):
    """The resources `kustomize build <directory>` would produce."""
    directory = pathlib.Path(directory)
    k = kustomization(directory)
    if k.get("kind", "Kustomization") != "Kustomization":
        raise ValueError("%s is a %s, not buildable alone" % (directory, k["kind"]))
    return _build(directory, k, [])


def _build(directory, k, docs):
    unknown = set(k) - SUPPORTED_KEYS
    if unknown:
        raise ValueError("render() does not know kustomization keys %s" % sorted(unknown))
    for entry in k.get("resources", ()):
        target = directory / entry
        docs += render(target) if target.is_dir() else copy.deepcopy(load_docs(target))
    for entry in k.get("components", ()):
        component = directory / entry
        spec = kustomization(component)
        if spec.get("kind") != "Component":
            raise ValueError("%s is not a Component" % component)
        docs = _build(component, spec, docs)
    for patch_ref in k.get("patches", ()):
        if set(patch_ref) != {"path"}:
            raise ValueError("render() supports only file patches: %r" % patch_ref)
        for patch in load_docs(directory / patch_ref["path"]):
            target = find(docs, patch["kind"], patch["metadata"]["name"])
            if target is None:
                raise ValueError("patch for missing %s/%s" % (patch["kind"], patch["metadata"]["name"]))
            if patch.get("$patch") == "delete":
                docs.remove(target)
                continue
            docs[docs.index(target)] = strategic_merge(target, patch)
    for item in k.get("replicas", ()):
        for doc in docs:
            if doc["kind"] in ("Deployment", "StatefulSet") and doc["metadata"]["name"] == item["name"]:
                doc["spec"]["replicas"] = item["count"]
    for image in k.get("images", ()):
        for container in all_containers(docs):
            if container["image"].split(":")[0] == image["name"]:
                name = image.get("newName", image["name"])
                tag = image.get("newTag")
                container["image"] = "%s:%s" % (name, tag) if tag else name
    for label_set in k.get("labels", ()):
        if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
            raise ValueError("render() applies labels to metadata only")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label_set["pairs"])
    if "namespace" in k:
        for doc in docs:
            if doc["kind"] not in NAMESPACED_NOT:
                doc["metadata"]["namespace"] = k["namespace"]
    return docs


def strategic_merge(base, patch):
    """Maps merge key by key; lists of named maps merge by name; other lists replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = strategic_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and patch
            and all(isinstance(i, dict) and "name" in i for i in base + patch)):
        out = [copy.deepcopy(i) for i in base]
        for item in patch:
            match = next((i for i, b in enumerate(out) if b["name"] == item["name"]), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = strategic_merge(out[match], item)
        return out
    return copy.deepcopy(patch)


def find(docs, kind, name):
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def pod_specs(docs):
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def all_containers(docs):
    for _, spec in pod_specs(docs):
        yield from spec.get("containers", [])
        yield from spec.get("initContainers", [])


def kustomization_dirs(buildable=True):
    """Folders with a kustomization.yaml; only Kustomizations (not Components) if buildable."""
    dirs = sorted(p.parent for p in K8S.rglob("kustomization.yaml"))
    if buildable:
        dirs = [d for d in dirs if kustomization(d).get("kind", "Kustomization") == "Kustomization"]
    return dirs


# -- nginx --------------------------------------------------------------------

_TOKEN = re.compile(r"""#[^\n]*|'[^']*'|"[^"]*"|[{};]|[^\s{};'"#]+""")


def nginx_tree(path=ROOT / "deploy" / "nginx.conf"):
    """The config as nested directives: [(name, [args], children or None)]."""
    tokens = [t for t in _TOKEN.findall(pathlib.Path(path).read_text()) if t[0] != "#"]
    pos = 0

    def block():
        nonlocal pos
        out, words = [], []
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok == ";":
                out.append((words[0], words[1:], None))
                words = []
            elif tok == "{":
                children = block()
                out.append((words[0], words[1:], children))
                words = []
            elif tok == "}":
                return out
            else:
                words.append(tok.strip("'\"") if tok[0] in "'\"" else tok)
        if words:
            raise ValueError("unterminated directive %r" % words)
        return out

    return block()


def _walk(tree, name):
    for directive in tree:
        if directive[0] == name:
            yield directive
        if directive[2]:
            yield from _walk(directive[2], name)


def nginx_locations(path=ROOT / "deploy" / "nginx.conf"):
    """[(modifier, pattern, upstream or None, children)] in file order."""
    out = []
    for _, args, children in _walk(nginx_tree(path), "location"):
        modifier, pattern = (args[0], args[1]) if len(args) == 2 else ("", args[0])
        upstream = None
        for _, pass_args, _ in _walk(children, "proxy_pass"):
            upstream = re.match(r"https?://([\w.-]+)", pass_args[0]).group(1)
        out.append((modifier, pattern, upstream, children))
    return out


def nginx_upstreams(path=ROOT / "deploy" / "nginx.conf"):
    """{upstream name: [server host:port]}."""
    return {args[0]: [a[0] for n, a, _ in children if n == "server"]
            for _, args, children in _walk(nginx_tree(path), "upstream")}


def nginx_route(path, locations=None):
    """The location nginx picks for a URI: exact, then the longest prefix if
    ^~, else the first matching regex, else the longest prefix."""
    locations = nginx_locations() if locations is None else locations
    for loc in locations:
        if loc[0] == "=" and loc[1] == path:
            return loc
    prefixes = [loc for loc in locations if loc[0] in ("", "^~") and path.startswith(loc[1])]
    longest = max(prefixes, key=lambda loc: len(loc[1]), default=None)
    if longest is not None and longest[0] == "^~":
        return longest
    for loc in locations:
        if loc[0] in ("~", "~*") and re.search(loc[1], path, re.I if loc[0] == "~*" else 0):
            return loc
    return longest


# -- settings the code reads --------------------------------------------------

def code_settings():
    """Every environment variable the services can read: shared.config
    DEFAULTS, config.yml's ${VAR} and any setting()/os.environ key in code."""
    from shared.config import DEFAULTS
    names = set(DEFAULTS)
    names |= set(re.findall(r"\$\{(\w+)", (ROOT / "config.yml").read_text()))
    for folder in ("shared", "services"):
        for source in (ROOT / folder).rglob("*.py"):
            text = source.read_text()
            names |= set(re.findall(r"setting\(\s*[^,()]+,\s*[\"'](\w+)[\"']", text))
            names |= set(re.findall(r"os\.environ(?:\.get\(|\[)\s*[\"'](\w+)[\"']", text))
            names |= set(re.findall(r"os\.getenv\(\s*[\"'](\w+)[\"']", text))
    return names
