"""The app factory: settings in, a FastAPI app with its models loaded in the lifespan."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..accounts.platform import Platform
from ..agent.service import AgentService
from ..batches import job as batch_jobs
from ..batches.service import BatchService
from ..batches.store import BatchStore
from ..catalog import Catalog
from ..config import Settings
from ..embeddings.service import EmbeddingService
from ..errors import InternalError, OpenGLMError
from ..evals.runs import EvalRuns
from ..evals.service import EvalService
from ..files.blobs import LocalBlobStore
from ..files.parser import FileParsing
from ..files.store import FileStore
from ..glms.conversations import ConversationStore
from ..glms.store import AgentStore
from ..images.service import ImageService
from ..jobs.kinds import import_kinds, load_builtin_kinds
from ..jobs.runner import JobRunner
from ..jobs.store import JobStore
from ..knowledge.service import KnowledgeService
from ..runs.deferred import AsyncCalls
from ..runs.service import RunService
from ..safety.hits import HitStore
from ..serving.models import ModelPool
from ..serving.service import ChatService
from ..tuning.finetuned import FineTunedModels
from ..tuning.service import FineTuningService
from ..tuning.trainers import continues_adapters
from ..untrusted import pool as untrusted
from ..web.assets import WebAssets
from .errors import http_error, validation_error
from .request_guard import RequestGuard
from .routes import (
    account,
    admin,
    assistant,
    async_calls,
    auth,
    batches,
    chat,
    completions,
    embeddings,
    evals,
    file_parser,
    files,
    fine_tuned_merge,
    fine_tuning,
    glms,
    images,
    knowledge,
    models,
    moderations,
    responses,
    tokenizer,
    web,
    websearch,
)

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        untrusted.configure(
            workers=settings.parse_workers, memory_mb=settings.parse_memory_mb, timeout=settings.parse_timeout
        )
        import_kinds(settings.split(settings.plugins))  # OPENGLM_PLUGINS: modules that register engines, kinds, ...
        catalog = Catalog.from_file(settings.models_file)
        embedding_service = app.state.embeddings = EmbeddingService(catalog, settings.threads)  # loads nothing yet
        platform = await Platform.open(settings)
        pool = ModelPool(catalog, settings)
        agents: AgentService | None = None
        knowledge: KnowledgeService | None = None
        image_service = app.state.images = ImageService(catalog)
        conversations: ConversationStore | None = None
        jobs: JobRunner | None = None
        deferred: AsyncCalls | None = None
        parsing: FileParsing | None = None
        try:
            await pool.start()
            await embedding_service.start()
            app.state.platform = platform
            blobs = LocalBlobStore(settings.data_dir / "blobs")
            app.state.files = FileStore(platform.db, blobs, quota_bytes=settings.storage_quota_bytes())
            app.state.glms = AgentStore(
                platform.db,
                app.state.files.quota,
                max_agents=settings.glms_per_account,
                versions_kept=settings.glm_versions_kept,
            )
            conversations = app.state.conversations = ConversationStore(platform.db)
            app.state.started_at = time.time()
            app.state.models = pool
            app.state.chat = ChatService(pool)
            load_builtin_kinds()
            jobs = app.state.jobs = JobRunner.from_settings(settings, JobStore(platform.db))
            knowledge = app.state.knowledge = await KnowledgeService.open(
                settings, platform.db, embedding_service, app.state.files, platform.meter, jobs
            )
            agents = app.state.agents = await AgentService.open(
                settings, catalog, app.state.chat, image_service, app.state.files, knowledge
            )
            app.state.fine_tuning = FineTuningService(
                catalog,
                jobs,
                app.state.files,
                blobs,
                FineTunedModels(platform.db, blobs.root, app.state.files.quota),
                serving=pool.merged,
                continues_adapters=continues_adapters(settings.fine_tuning_trainer),
            )
            app.state.evals = EvalService(jobs, EvalRuns(platform.db))
            app.state.runs = RunService(
                meter=platform.meter,
                chat=app.state.chat,
                models=pool,
                agents=agents,
                glms=app.state.glms,
                conversations=conversations,
                knowledge=knowledge,
                fine_tuning=app.state.fine_tuning,
                files=app.state.files,
                images=image_service,
                embeddings=embedding_service,
                authenticator=platform.authenticator,
                safety=catalog.safety,
                moderation_hits=HitStore(platform.db),
            )
            deferred = app.state.async_calls = AsyncCalls(jobs, app.state.runs, platform.db)
            app.state.batches = BatchService(
                BatchStore(platform.db, jobs.store),
                app.state.files,
                jobs,
                app.state.runs,
                concurrency=settings.batch_concurrency,
            )
            batch_jobs.attach(platform.db, app.state.batches)
            parsing = app.state.file_parsing = FileParsing(app.state.files, jobs, platform.db)
            await jobs.start()
            yield
        finally:
            if jobs is not None:
                await jobs.close()  # running jobs are given back for the next worker (or this server's restart)
            if deferred is not None:
                deferred.close()
                batch_jobs.detach(platform.db)
            if parsing is not None:
                parsing.close()
            if conversations is not None:
                await conversations.drain()  # turns of streams that ended as the server stopped
            if agents is not None:
                await agents.close()
            if knowledge is not None:
                await knowledge.close()
            await image_service.close()
            await embedding_service.close()
            await pool.stop()
            await platform.close()
            await untrusted.shutdown()

    app = FastAPI(title="OpenGLM", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.web = WebAssets.load()  # a few hundred KB of static files, read once
    install_error_handlers(app)
    # Authentication from the headers and per-route body caps, before any route reads a body.
    app.add_middleware(RequestGuard, json_body_bytes=settings.max_request_mb * 1024 * 1024)
    routers = [chat, async_calls, completions, models, images, embeddings, file_parser, files]
    routers += [fine_tuned_merge, fine_tuning]
    routers += [knowledge, glms, batches, moderations, tokenizer, websearch, responses]
    routers += [assistant, account, evals]
    routers += [auth, admin]
    routers.append(web)  # the web app last: its routes are / and /app/..., after every API route
    for module in routers:
        app.include_router(module.router)
    return app


def install_error_handlers(app: FastAPI) -> None:
    async def on_platform_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OpenGLMError)
        return JSONResponse(exc.to_body(), status_code=exc.status, headers=exc.headers())

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return await on_platform_error(request, validation_error(exc))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return await on_platform_error(request, http_error(exc))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return await on_platform_error(request, InternalError("internal error; see the server log"))

    app.add_exception_handler(OpenGLMError, on_platform_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
