"""The serving app: FastAPI in front of ONNX Runtime.

- Loads ``models:/<name>@production`` (or a version, or a bundle path) and a search index of the catalog.
- Reports the ONNX Runtime provider actually in use in ``/readyz`` and the log (it falls back to CPU
  silently otherwise).
- Micro-batches concurrent requests per graph (``batching``).
- Hot reload: a background task polls the alias; a new version is loaded beside the old one and swapped
  in atomically. Requests that already hold the old model finish on it; it is retired once they are
  done (or after ``reload.drain_seconds``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from fashionvlp.serving.batching import MicroBatcher, Unbatched
from fashionvlp.serving.bundle import Bundle, InputError
from fashionvlp.serving.config import ServingConfig
from fashionvlp.serving.index import CatalogIndex
from fashionvlp.serving.source import ModelSource, Resolved

log = logging.getLogger("fashionvlp.serving")


class FastJSON(JSONResponse):
    """orjson with numpy arrays as they are: FastAPI's default encoder walks a list of floats value by value,
    which costs more than the text encoder itself at these sizes."""

    def render(self, content) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


# --- requests -------------------------------------------------------------------------------------
# A list's length is checked before its items (pydantic stops at the length), so a body of millions of
# wrong items costs one error, not one per item. MAX_LIST_ITEMS bounds the schema; limits.max_items
# (smaller) is checked after.
MAX_LIST_ITEMS = 1024


class TextsRequest(BaseModel):
    texts: list[str] = Field(max_length=MAX_LIST_ITEMS,
                             description="Texts to embed (title + '. ' + description for products).")


class ImagesRequest(BaseModel):
    images: list[str] = Field(max_length=MAX_LIST_ITEMS, description="Base64-encoded image files (JPEG, PNG, WebP …).")


class ErrorDetail(BaseModel):
    field: str = Field(description="The request field at fault: `texts[2]`, `image`, `k`, `body`, `path`, `model`.")
    error: str = Field(description="What is wrong with it.")


class ErrorBody(BaseModel):
    """Every error the app answers has this shape."""

    detail: ErrorDetail


MAX_ERROR_CHARS = 500  # an error message is capped: it never echoes a client's input back at length
ERROR_RESPONSES = {status: {"model": ErrorBody, "description": text} for status, text in {
    400: "The request cannot be read (malformed HTTP).",
    404: "No such route, product, or capability in the served bundle (the field says which).",
    405: "The route does not take this method.",
    413: "Over a limit: body bytes, items, characters, image pixels.",
    422: "A field is missing, of the wrong type, or unusable (an undecodable image, an invalid text).",
    503: "No model is loaded yet.",
}.items()}


class SearchRequest(BaseModel):
    text: str
    k: int = Field(10, ge=1)


class ProductRequest(BaseModel):
    image: str = Field(description="Base64-encoded image file.")
    text: str
    category: str | None = Field(None, description="Known category; if absent it is predicted.")


# --- one loaded model -----------------------------------------------------------------------------
@dataclass
class ServedModel:
    resolved: Resolved
    bundle: Bundle
    index: CatalogIndex | None
    batchers: dict = field(default_factory=dict)
    inflight: int = 0
    loaded_at: float = field(default_factory=time.time)

    @property
    def version(self) -> str:
        return self.resolved.version

    def describe(self) -> dict:
        # Names, not absolute paths: /readyz is public and the layout of the host is not its business.
        return {"uri": self.resolved.uri, "version": self.version, "bundle": self.bundle.path.name,
                "arch": self.bundle.arch, "graphs": self.bundle.files,
                "loaded_at": self.loaded_at}


class Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.batch_size = Histogram("fashionvlp_batch_size", "Items per ONNX Runtime call", ["graph"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.queue_wait = Histogram("fashionvlp_batch_queue_wait_seconds", "Oldest item's wait before its batch ran",
                                    ["graph"], buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1),
                                    registry=self.registry)
        self.reloads = Counter("fashionvlp_model_reloads_total", "Model loads by outcome", ["outcome"],
                               registry=self.registry)
        self.model = Gauge("fashionvlp_model_info", "The served model version and provider (value 1)",
                           ["version", "provider", "arch"], registry=self.registry)

    def observe(self, graph: str, size: int, wait: float) -> None:
        self.batch_size.labels(graph).observe(size)
        self.queue_wait.labels(graph).observe(wait)


class ServingState:
    def __init__(self, config: ServingConfig):
        self.config = config
        self.source = ModelSource(config.model, config.registry_uri, config.resolve(config.cache_dir))
        self.metrics = Metrics()
        self.inference = ThreadPoolExecutor(max_workers=4, thread_name_prefix="onnxruntime")
        self.current: ServedModel | None = None
        self.last_reload_error: str | None = None
        self.failed_version: str | None = None    # not retried until the alias moves again
        self.reload_task: asyncio.Task | None = None
        self.retiring: set[asyncio.Task] = set()

    def _load_blocking(self, resolved: Resolved) -> tuple[Bundle, CatalogIndex | None]:
        cfg = self.config
        # A registry version's files were checked by fetch; a bundle directory is checked by Bundle.
        bundle = Bundle(self.source.fetch(resolved), cfg.providers, cfg.intra_op_threads, cfg.int8,
                        verified=self.source.path is None)
        index = None
        if cfg.index.catalog is not None and "image" in bundle.sessions:
            index = CatalogIndex.build(bundle, cfg.resolve(cfg.index.catalog), cfg.index.splits,
                                       cfg.resolve(cfg.cache_dir), cfg.index.batch_size)
        return bundle, index

    def _batchers(self, bundle: Bundle) -> dict:
        b = self.config.batching
        runs = {"image": bundle.embed_images, "text": bundle.embed_texts,
                "attributes": bundle.attribute_probabilities, "categories": bundle.category_logits}
        make = ((lambda name, run: MicroBatcher(name, run, b.max_batch_size, b.max_wait_ms, self.inference,
                                                self.metrics.observe)) if b.enabled else
                (lambda name, run: Unbatched(name, run, self.inference, self.metrics.observe)))
        return {name: make(name, run) for name, run in runs.items() if name in bundle.sessions}

    async def load(self, resolved: Resolved) -> ServedModel:
        bundle, index = await asyncio.get_running_loop().run_in_executor(None, self._load_blocking, resolved)
        await asyncio.get_running_loop().run_in_executor(None, smoke_test, bundle, index)
        model = ServedModel(resolved, bundle, index, self._batchers(bundle))
        for batcher in model.batchers.values():
            batcher.start()
        return model

    def activate(self, model: ServedModel) -> None:
        old, self.current = self.current, model
        self.metrics.model.clear()
        self.metrics.model.labels(model.version, model.bundle.active_provider, model.bundle.arch).set(1)
        log.info("serving %s version %s on %s", model.resolved.uri, model.version, model.bundle.active_provider)
        if old is not None:
            task = asyncio.get_running_loop().create_task(self._retire(old))
            self.retiring.add(task)
            task.add_done_callback(self.retiring.discard)

    async def _retire(self, model: ServedModel) -> None:
        deadline = time.perf_counter() + self.config.reload.drain_seconds
        while model.inflight and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        for batcher in model.batchers.values():
            await batcher.drain(max(0.0, deadline - time.perf_counter()))
        log.info("retired version %s (%d requests still in flight)", model.version, model.inflight)

    async def reload_once(self) -> bool:
        """Loads and swaps in the alias's version if it moved. Returns whether it swapped."""
        loop = asyncio.get_running_loop()
        version = None
        try:
            resolved = await loop.run_in_executor(None, self.source.current)
            version = resolved.version
            if self.current is not None and version == self.current.version:
                # The alias is back on the served version: a later move to the failed one tries it again.
                self.failed_version = None
                return False
            if version == self.failed_version:
                return False
            log.info("%s moved to version %s; loading it beside version %s", self.source.spec, version,
                     self.current.version if self.current else None)
            model = await self.load(resolved)
        except Exception as exc:  # noqa: BLE001 — keep serving the old version; report why
            self.failed_version = version
            self.last_reload_error = f"version {version}: {type(exc).__name__}: {exc}"
            self.metrics.reloads.labels("refused" if isinstance(exc, SmokeTestFailed) else "failed").inc()
            log.error("reload failed, still serving version %s: %s",
                      self.current.version if self.current else None, self.last_reload_error)
            return False
        self.activate(model)
        self.last_reload_error = self.failed_version = None
        self.metrics.reloads.labels("ok").inc()
        return True

    async def reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload.poll_seconds)
            await self.reload_once()

    @asynccontextmanager
    async def use(self):
        model = self.current
        if model is None:
            raise InputError("model", "no model loaded yet", 503)
        model.inflight += 1
        try:
            yield model
        finally:
            model.inflight -= 1

    async def close(self) -> None:
        if self.reload_task:
            self.reload_task.cancel()
        for task in list(self.retiring):
            task.cancel()
        if self.current:
            for batcher in self.current.batchers.values():
                await batcher.stop()
        self.inference.shutdown(wait=False, cancel_futures=True)


# --- checking a version before it serves ----------------------------------------------------------
class SmokeTestFailed(RuntimeError):
    """A version that loads but cannot answer: it is refused and the served version stays."""


def _all_finite(outputs) -> bool:
    if isinstance(outputs, dict):
        return all(_all_finite(v) for v in outputs.values())
    if isinstance(outputs, (list, tuple)):
        return all(_all_finite(v) for v in outputs)
    return bool(np.isfinite(np.asarray(outputs, dtype=np.float64)).all())


def smoke_test(bundle: Bundle, index: CatalogIndex | None) -> None:
    """Every graph of the bundle answers a probe with finite outputs of the expected shape, and a search
    finds products. Catches what loads fine and serves nonsense (weights altered in place, NaNs)."""
    probe_text = "a red cotton dress"
    pixels = bundle.pixels(Image.new("RGB", (bundle.image_size, bundle.image_size), (180, 40, 40)))
    checks = {"text": lambda: bundle.embed_texts([probe_text, probe_text + " with long sleeves"]),
              "image": lambda: bundle.embed_images([pixels, pixels])}
    if "attributes" in bundle.sessions:
        checks["attributes"] = lambda: bundle.attribute_probabilities([(pixels, probe_text)] * 2)
    if "categories" in bundle.sessions:
        checks["categories"] = lambda: bundle.category_logits([(pixels, probe_text)] * 2)
    problems, text_vectors = [], None
    for graph, run in checks.items():
        if graph not in bundle.sessions:
            continue
        try:
            out = run()
        except Exception as exc:  # noqa: BLE001 — reported as the reason the version is refused
            problems.append(f"{graph}: {type(exc).__name__}: {exc}")
            continue
        if len(out) != 2:
            problems.append(f"{graph}: {len(out)} outputs for 2 inputs")
        elif not _all_finite(out):
            problems.append(f"{graph}: outputs are not finite")
        if graph == "text" and not problems:
            text_vectors = np.asarray(out)
    if index is not None and text_vectors is not None and not problems:
        if not index.search(text_vectors[:1], 5)[0]:
            problems.append("search: no results from the catalog index")
    if problems:
        raise SmokeTestFailed("smoke test failed: " + "; ".join(problems))


# --- request checks -------------------------------------------------------------------------------
def _check_count(items: list, field_name: str, limit: int) -> None:
    if not items:
        raise InputError(field_name, "empty list")
    if len(items) > limit:
        raise InputError(field_name, f"{len(items)} items, over the limit of {limit}", 413)


def _check_text(text: str, field_name: str, limit: int) -> str:
    if not text.strip():
        raise InputError(field_name, "empty text")
    if len(text) > limit:
        raise InputError(field_name, f"text of {len(text)} characters, over the limit of {limit}", 413)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: JSON can carry it, no tokenizer can read it
        raise InputError(field_name, f"not valid Unicode: a lone surrogate at character {exc.start}") from None
    return text


def error_response(field_name: str, message: str, status: int) -> JSONResponse:
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + " …"
    return JSONResponse({"detail": {"field": field_name, "error": message}}, status)


def _field_of(location: tuple) -> str:
    """pydantic's ('body', 'texts', 3) → 'texts[3]'; the body itself → 'body'."""
    parts = [str(p) for p in location if p != "body"] if len(location) > 1 else ["body"]
    name = ""
    for part in parts:
        name += f"[{part}]" if part.isdigit() else (f".{part}" if name else part)
    return name or "body"


def validation_error_response(errors: list[dict], max_items: int) -> JSONResponse:
    """A request that does not fit its model: the first problem, in the one error shape, without the input
    (FastAPI's own handler echoes it, and crashes on a NaN, bytes or a lone surrogate)."""
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": "value_error"}
    field_name = _field_of(tuple(first.get("loc", ("body",))))
    context = first.get("ctx") or {}
    if first.get("type") == "too_long" and "actual_length" in context:
        return error_response(field_name, f"{context['actual_length']} items, over the limit of {max_items}", 413)
    message = str(first.get("msg", "invalid"))
    if first.get("type") == "json_invalid":  # its location is ("body", <character position>)
        location = tuple(first.get("loc", ()))
        field_name = "body"
        message = f"not valid JSON (at character {location[-1] if len(location) > 1 else '?'}: " \
                  f"{context.get('error', message)})"
    elif first.get("type") in ("model_attributes_type", "dict_type") and field_name == "body":
        message = "the body must be a JSON object (Content-Type: application/json) of this route's fields"
    more = len(errors) - 1
    return error_response(field_name, message + (f" (and {more} more problem(s))" if more > 0 else ""), 422)


def _image_bytes(data: str, field_name: str) -> bytes:
    if not data:
        raise InputError(field_name, "empty image")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(field_name, f"not base64 ({exc})") from exc


async def _pixels(model: ServedModel, data: str, field_name: str, max_pixels: int) -> np.ndarray:
    raw = _image_bytes(data, field_name)
    bundle = model.bundle
    return await asyncio.to_thread(lambda: bundle.pixels(bundle.decode_image(raw, field_name, max_pixels)))


class BodyLimit:
    """Rejects a body over ``limit`` bytes with 413: by Content-Length, or while a chunked body streams in
    (it is buffered up to the limit, then replayed to the app)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._reject(scope, receive, send, f"{int(length)} bytes")
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await self._reject(scope, receive, send, f"over {self.limit} bytes so far")
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed():
            return next(replay, None) or await receive()

        return await self.app(scope, replayed, send)

    async def _reject(self, scope, receive, send, size: str):
        response = error_response("body", f"request body of {size}, over the limit of {self.limit} bytes", 413)
        await response(scope, receive, send)


# --- the app --------------------------------------------------------------------------------------
def create_app(config: ServingConfig) -> FastAPI:
    from prometheus_fastapi_instrumentator import Instrumentator

    state = ServingState(config)
    limits = config.limits

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        first = await asyncio.get_running_loop().run_in_executor(None, state.source.current)
        state.activate(await state.load(first))
        state.metrics.reloads.labels("ok").inc()
        if state.source.follows_alias and config.reload.poll_seconds > 0:
            state.reload_task = asyncio.get_running_loop().create_task(state.reload_loop())
        yield
        await state.close()

    app = FastAPI(title="fashionvlp serving", version="1", lifespan=lifespan, responses=ERROR_RESPONSES,
                  description="Embeddings, text→image search, attributes and categories from an exported "
                              "fashionvlp ONNX bundle. Every error answers `{\"detail\": {\"field\", \"error\"}}`.")
    app.state.serving = state
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    Instrumentator(registry=state.metrics.registry, excluded_handlers=["/metrics"]).instrument(app).expose(
        app, endpoint="/metrics", include_in_schema=False)

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError):
        return error_response(exc.field, exc.message, exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        return validation_error_response(list(exc.errors()), limits.max_items)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        field_name = "path" if exc.status_code in (404, 405) else "body"
        return error_response(field_name, f"{exc.detail}: {request.method} {request.url.path}"
                              if exc.status_code in (404, 405) else str(exc.detail), exc.status_code)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        model = state.current
        if model is None:
            return JSONResponse({"ready": False, "reason": "no model loaded yet"}, 503)
        provider = model.bundle.active_provider
        return {"ready": True, "model": model.describe(), "provider": provider,
                "requested_providers": config.providers,
                "cpu_fallback": provider == "CPUExecutionProvider" and config.providers[0] != provider,
                "fallback_reason": model.bundle.fallback_reason,
                "index": {"products": len(model.index), "catalog": model.index.catalog.name} if model.index else None,
                "batching": config.batching.model_dump(), "hot_reload": state.source.follows_alias
                and config.reload.poll_seconds > 0, "last_reload_error": state.last_reload_error,
                "refused_version": state.failed_version}

    @app.post("/v1/embed/text")
    async def embed_text(body: TextsRequest):
        _check_count(body.texts, "texts", limits.max_items)
        texts = [_check_text(t, f"texts[{i}]", limits.max_text_chars) for i, t in enumerate(body.texts)]
        async with state.use() as model:
            vectors = await model.batchers["text"].submit_many(texts)
        return FastJSON({"model_version": model.version, "embeddings": np.stack(vectors)})

    @app.post("/v1/embed/image")
    async def embed_image(body: ImagesRequest):
        _check_count(body.images, "images", limits.max_items)
        async with state.use() as model:
            pixels = [await _pixels(model, data, f"images[{i}]", limits.max_image_pixels)
                      for i, data in enumerate(body.images)]
            vectors = await model.batchers["image"].submit_many(pixels)
        return FastJSON({"model_version": model.version, "embeddings": np.stack(vectors)})

    @app.post("/v1/search")
    async def search(body: SearchRequest):
        text = _check_text(body.text, "text", limits.max_text_chars)
        if body.k > limits.max_k:
            raise InputError("k", f"{body.k} is over the limit of {limits.max_k}")
        async with state.use() as model:
            if model.index is None:
                raise InputError("index", "this server has no search index (index.catalog is null)", 404)
            vector = await model.batchers["text"].submit(text)
            results = model.index.search(vector[None, :], body.k)[0]
        return FastJSON({"model_version": model.version, "results": results})

    async def _fused(graph: str, body: ProductRequest):
        text = _check_text(body.text, "text", limits.max_text_chars)
        async with state.use() as model:
            if graph not in model.batchers:
                raise InputError(graph, f"the served bundle has no {graph} graph", 404)
            item = (await _pixels(model, body.image, "image", limits.max_image_pixels), text)
            tasks = {graph: model.batchers[graph].submit(item)}
            if graph == "attributes" and body.category is None and "categories" in model.batchers:
                tasks["categories"] = model.batchers["categories"].submit(item)
            done = dict(zip(tasks, await asyncio.gather(*tasks.values())))
        return model, done

    @app.post("/v1/attributes")
    async def attributes(body: ProductRequest):
        if body.category is not None and state.current and \
                body.category not in state.current.bundle.labels["categories"]:
            raise InputError("category", f"unknown category {body.category!r}; known: "
                                         f"{state.current.bundle.labels['categories']}")
        model, done = await _fused("attributes", body)
        category = {"value": body.category, "source": "request"} if body.category else None
        if "categories" in done:
            predicted = model.bundle.category_decision(done["categories"])["category"]
            category = {**predicted, "source": "predicted"}
        decisions = model.bundle.attribute_decisions(done["attributes"], category["value"] if category else None)
        return {"model_version": model.version, "category": category,
                "attributes": {d["attribute"]: d["value"] for d in decisions if d["accepted"]},
                "predictions": decisions,
                "policy": "accepted when the confidence clears the attribute's threshold for 90% precision "
                          "(calibrated on the validation split)"}

    @app.post("/v1/categorize")
    async def categorize(body: ProductRequest):
        model, done = await _fused("categories", body)
        return {"model_version": model.version, **model.bundle.category_decision(done["categories"])}

    return app


def serve(config: ServingConfig) -> None:
    import uvicorn

    # force: the CLI set its own terse handler; a server's log lines need their time.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    # log_config=None: uvicorn's own lines go through the root handler above, with timestamps.
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info", access_log=False,
                log_config=None)
