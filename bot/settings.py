"""Settings from the environment and `.env` (see .env.example for every variable)."""

from __future__ import annotations

from functools import cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(ValueError):
    """Settings that cannot work together; `gridbot run` prints the message and exits 2."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///gridbot.db"
    timezone: str = "Asia/Shanghai"
    language: str = "zh_CN"
    log_level: str = "INFO"

    # Telegram
    telegram_bot_token: str | None = None
    telegram_framework: str = "ptb"  # ptb | aiogram
    telegram_api_base_url: str | None = None  # e.g. http://127.0.0.1:8081/bot
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_webhook_listen: str = "0.0.0.0"
    telegram_webhook_port: int = 8443

    # WeChat Work (企业微信) self-built app
    wecom_corp_id: str | None = None
    wecom_agent_id: str | None = None
    wecom_secret: str | None = None
    wecom_token: str | None = None
    wecom_aes_key: str | None = None
    wecom_callback_host: str = "0.0.0.0"
    wecom_callback_port: int = 8080
    wecom_callback_path: str = "/wecom/callback"
    wecom_api_base_url: str | None = None  # ends in /cgi-bin/

    # the one web server (bot/web.py): WeChat Work callback, /healthz, the API.
    # Empty host/port fall back to WECOM_CALLBACK_HOST/PORT, so older .env files keep working.
    http_host: str | None = None
    http_port: int | None = None
    health_max_queue_age: float = 300.0  # /healthz answers 503 when a due message waits longer

    # media store (docs/media.md): a directory (default: "media" next to the SQLite file) or S3
    media_store: str = "dir"  # dir | s3
    media_dir: str | None = None
    media_s3_endpoint_url: str | None = None  # MinIO, Alibaba OSS, Tencent COS …; empty = AWS
    media_s3_bucket: str | None = None
    media_s3_prefix: str = "media/"
    media_s3_addressing: str = "path"  # path (MinIO, moto) | virtual (Alibaba OSS, Tencent COS)
    media_s3_region: str | None = None
    media_s3_access_key: str | None = None
    media_s3_secret_key: str | None = None
    media_fetch_seconds: float = 30.0  # how often attachments not fetched yet are tried again
    # voice conversion between platforms (bot/voice.py): the binaries, by name on PATH or a path
    ffmpeg_binary: str = "ffmpeg"
    sox_binary: str = "sox"
    # the deadline sweep: a chat that would get more notices than this from one run gets one digest
    deadline_digest_over: int = 5

    # 微信客服 (WeChat customer service, residents on personal WeChat; the corp id is WECOM_CORP_ID)
    wechat_kf_secret: str | None = None  # 微信客服 → API → Secret
    wechat_kf_token: str | None = None
    wechat_kf_aes_key: str | None = None
    wechat_kf_open_kfid: str | None = None  # the customer-service account residents write to (wk…)
    wechat_kf_callback_path: str = "/wechat/kf/callback"  # on the one web server (HTTP_HOST/HTTP_PORT)
    wechat_kf_link: str | None = None  # https://work.weixin.qq.com/kfid/… — printed on the notice card

    # 公众号 (Official Account, residents on personal WeChat; docs/wechat.md)
    wechat_mp_app_id: str | None = None  # 设置与开发 → 基本配置 → AppID (wx…)
    wechat_mp_secret: str | None = None  # … → AppSecret
    wechat_mp_token: str | None = None  # … → 服务器配置 → Token
    wechat_mp_aes_key: str | None = None  # … → EncodingAESKey; empty = plain mode (明文模式)
    wechat_mp_callback_path: str = "/wechat/mp/callback"  # on the one web server (HTTP_HOST/HTTP_PORT)
    wechat_mp_api_base_url: str | None = None  # ends in /cgi-bin/; default https://api.weixin.qq.com/cgi-bin/
    wechat_mp_template_id: str | None = None  # 模板消息 for case notices after the 48-hour window
    wechat_mp_template_fields: str = "thing1=text,time2=time"  # template key=text|number|time, …
    wechat_mp_template_url: str | None = None  # where a press on the template message leads
    wechat_mp_follow_url: str | None = None  # the account's follow link/QR URL, printed on the notice card

    # web console (docs/console.md): on the one web server, or its own address when CONSOLE_PORT is set
    console_enabled: bool = True
    console_url: str | None = None  # the address people open, e.g. https://console.example.gov.cn
    console_host: str | None = None  # with CONSOLE_PORT: a site of its own (e.g. 127.0.0.1 behind a proxy)
    console_port: int | None = None
    console_session_hours: float = 12.0
    console_link_minutes: int = 10  # how long a /console sign-in link works
    # the console's map tiles: a Leaflet URL template and its datum (wgs84 | gcj02 | bd09); none: blank
    console_tile_url: str | None = None
    console_tile_crs: str = "wgs84"
    console_tile_attribution: str | None = None
    console_tile_subdomains: str | None = None  # {s} in the URL: abc (OSM), 1234 (Amap), 01234567 (Tianditu)

    # delivery and scheduler
    delivery_poll_seconds: float = 1.0
    # Open311 webhooks: a change is retried this long (backoff doubling up to the cap), then failed
    webhook_retry_hours: float = 24.0
    webhook_backoff_cap_seconds: float = 600.0
    scheduler_enabled: bool = True

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    @property
    def wecom_enabled(self) -> bool:
        return bool(self.wecom_corp_id and self.wecom_secret and self.wecom_token and self.wecom_aes_key)

    @property
    def web_host(self) -> str:
        return self.http_host or self.wecom_callback_host

    @property
    def web_port(self) -> int:
        return self.http_port if self.http_port is not None else self.wecom_callback_port

    @property
    def wechat_kf_enabled(self) -> bool:
        return bool(self.wecom_corp_id and self.wechat_kf_secret and self.wechat_kf_token
                    and self.wechat_kf_aes_key and self.wechat_kf_open_kfid)

    @property
    def wechat_mp_enabled(self) -> bool:
        return bool(self.wechat_mp_app_id and self.wechat_mp_secret and self.wechat_mp_token)

    @property
    def chat_channels(self) -> frozenset[str]:
        out = set()
        if self.telegram_enabled:
            out.add("telegram")
        if self.wecom_enabled:
            out.add("wecom")
        if self.wechat_kf_enabled:
            out.add("wechat_kf")
        if self.wechat_mp_enabled:
            out.add("wechat_mp")
        return frozenset(out)


@cache
def get_settings() -> Settings:
    return Settings()
