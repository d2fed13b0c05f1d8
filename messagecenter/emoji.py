"""Tags as ntfy shows them: a tag that is an emoji short code becomes the emoji.

ntfy turns tags that match its emoji list (GitHub's short codes) into emoji
in front of the title and shows the others as words. This is the part of
that list people use for notifications; any other tag shows as a word here,
as ntfy would show a word that is not a short code.
"""

from __future__ import annotations

from dataclasses import dataclass

EMOJI = {
    "+1": "👍", "thumbsup": "👍", "-1": "👎", "thumbsdown": "👎",
    "warning": "⚠️", "rotating_light": "🚨", "no_entry": "⛔", "no_entry_sign": "🚫",
    "x": "❌", "heavy_check_mark": "✔️", "white_check_mark": "✅", "heavy_multiplication_x": "✖️",
    "question": "❓", "exclamation": "❗", "bangbang": "‼️", "information_source": "\u2139\ufe0f",
    "tada": "🎉", "partying_face": "🥳", "confetti_ball": "🎊", "sparkles": "✨", "star": "⭐",
    "fire": "🔥", "boom": "💥", "zap": "⚡", "skull": "💀", "skull_and_crossbones": "☠️",
    "bell": "🔔", "no_bell": "🔕", "loudspeaker": "📢", "mega": "📣", "memo": "📝",
    "email": "📧", "envelope": "✉️", "inbox_tray": "📥", "outbox_tray": "📤", "package": "📦",
    "calendar": "📆", "date": "📅", "alarm_clock": "⏰", "hourglass": "⌛", "stopwatch": "⏱️",
    "computer": "💻", "desktop_computer": "🖥️", "floppy_disk": "💾", "cd": "💿", "gear": "⚙️",
    "wrench": "🔧", "hammer": "🔨", "lock": "🔒", "unlock": "🔓", "key": "🔑", "shield": "🛡️",
    "bug": "🐛", "rocket": "🚀", "robot": "🤖", "ghost": "👻", "eyes": "👀", "wave": "👋",
    "clap": "👏", "pray": "🙏", "muscle": "💪", "heart": "❤️", "broken_heart": "💔",
    "smile": "😄", "smiley": "😃", "grinning": "😀", "joy": "😂", "wink": "😉", "cry": "😢",
    "sob": "😭", "angry": "😠", "rage": "😡", "scream": "😱", "thinking": "🤔", "sunglasses": "😎",
    "sunny": "☀️", "cloud": "☁️", "umbrella": "☔", "snowflake": "❄️", "rainbow": "🌈",
    "house": "🏠", "car": "🚗", "moneybag": "💰", "dollar": "💵", "chart_with_upwards_trend": "📈",
    "chart_with_downwards_trend": "📉", "bar_chart": "📊", "link": "🔗", "pushpin": "📌",
    "triangular_flag_on_post": "🚩", "checkered_flag": "🏁", "trophy": "🏆", "medal_sports": "🏅",
    "coffee": "☕", "beer": "🍺", "pizza": "🍕", "cake": "🍰", "gift": "🎁", "balloon": "🎈",
    "dog": "🐶", "cat": "🐱", "red_circle": "🔴", "green_circle": "🟢", "yellow_circle": "🟡",
    "large_blue_circle": "🔵", "white_circle": "⚪", "black_circle": "⚫", "cd_rom": "💿",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    emoji: str  # "" when ntfy shows the tag as a word


def ntfy_tags(tags: list[str]) -> list[Tag]:
    """The tags in ntfy's order: emoji first (ntfy puts them before the title), then words."""
    shown = [Tag(tag, EMOJI.get(tag, "")) for tag in tags]
    return [tag for tag in shown if tag.emoji] + [tag for tag in shown if not tag.emoji]
