"""The streamer's audience and loyalty page: growth suggestions, concurrent viewers, watch time, new vs
returning viewers and engagement per day, and the channel's loyalty leaderboard, all read from the marts."""

import pandas as pd
import streamlit as st

from dashboards.auth import allowed
from services import marts
from services.games import display_name
from services.growth import MIN_DAYS, suggestions
from services.money import SETTLEMENT_CURRENCY, format_minor
from services.settings import Settings

EMPTY_STATE = "No audience yet — waiting for the first viewers to be counted"
NO_LEADERBOARD = "No loyalty points yet on this channel"
NO_ADVICE = f"Nothing to suggest: your figures look healthy, or there are under {MIN_DAYS} days of them"
NO_FORECAST = "No forecast yet — it needs 28 days of revenue history"

root = Settings().marts_root
who = allowed("audience")

st.title("Audience and loyalty")
channels = who.visible(marts.audience_channels(root))
if not channels:
    st.info(EMPTY_STATE)
    st.stop()

channel = st.selectbox("Channel", channels, key="audience_channel")
days = marts.stream_days(root, channel)

peak, watch, viewers = st.columns(3)
peak.metric("Peak concurrent viewers", max(d.peak_concurrent_viewers for d in days))
watch.metric("Watch time, hours", f"{sum(d.watch_minutes for d in days) / 60:.1f}")
viewers.metric("New viewers", sum(d.new_viewers for d in days))

st.subheader("Growth suggestions")
advice = suggestions(days, marts.revenue_by_day(root, channel))
if not advice:
    st.caption(NO_ADVICE)
for item in advice:
    st.markdown(f"**{item.title}** — {item.why}")

st.subheader("Viewers by day")
st.line_chart(
    pd.DataFrame(
        {
            "Peak concurrent": [d.peak_concurrent_viewers for d in days],
            "Average concurrent": [d.avg_concurrent_viewers or 0.0 for d in days],
        },
        index=pd.Index([d.day for d in days], name="Day"),
    )
)
st.dataframe(
    pd.DataFrame(
        {
            "Day": [d.day.isoformat() for d in days],
            "Peak": [d.peak_concurrent_viewers for d in days],
            "Average": [round(d.avg_concurrent_viewers or 0.0, 2) for d in days],
            "Watch minutes": [d.watch_minutes for d in days],
            "Unique viewers": [d.unique_viewers for d in days],
            "New": [d.new_viewers for d in days],
            "Returning": [d.returning_viewers for d in days],
            "Chat messages": [d.chat_messages for d in days],
            "Messages per viewer-hour": [round(d.messages_per_viewer_hour or 0.0, 2) for d in days],
            "Revenue per viewer-hour": [
                format_minor(d.revenue_per_viewer_hour_minor, SETTLEMENT_CURRENCY)
                if d.revenue_per_viewer_hour_minor is not None
                else "—"
                for d in days
            ],
        }
    ),
    hide_index=True,
)

st.subheader("Broadcasts")
casts = marts.broadcasts(root, channel)
st.dataframe(
    pd.DataFrame(
        {
            "Day": [b.day.isoformat() for b in casts],
            "Broadcast": [b.broadcast_id for b in casts],
            "Game": [display_name(b.game) if b.game else "—" for b in casts],
            "Live minutes": [b.live_minutes for b in casts],
            "Peak": [b.peak_concurrent_viewers for b in casts],
            "Average": [round(b.avg_concurrent_viewers, 2) for b in casts],
            "Watch minutes": [b.watch_minutes for b in casts],
            "Average vs previous": [
                f"{b.avg_concurrent_viewers - b.previous_avg_concurrent_viewers:+.2f}"
                if b.previous_avg_concurrent_viewers is not None
                else "first"
                for b in casts
            ],
        }
    ),
    hide_index=True,
)

st.subheader("Games on Efir this week")
st.caption(
    "All channels, the latest 7 days: where viewers are, and how many viewers an average live minute "
    "of each game holds (watch minutes per live minute)."
)
games = marts.games_this_week(root)
st.dataframe(
    pd.DataFrame(
        {
            "Game": [display_name(g.game) if g.game else "(no game set)" for g in games],
            "Watch minutes": [g.watch_minutes for g in games],
            "Live minutes": [g.live_minutes for g in games],
            "Viewers per live minute": [
                round(g.watch_minutes / g.live_minutes, 2) if g.live_minutes else None for g in games
            ],
            "Peak viewers": [g.peak_concurrent_viewers for g in games],
            "Channels (most in a day)": [g.max_channels for g in games],
        }
    ),
    hide_index=True,
)

st.subheader("Revenue forecast")
ahead = marts.revenue_forecast(root, channel)
if not ahead:
    st.info(NO_FORECAST)
else:
    error = ahead[0].backtest_mae_rub_minor
    st.caption(
        f"Method {ahead[0].method}; backtest error "
        + (
            f"±{format_minor(error, SETTLEMENT_CURRENCY)} a day"
            if error is not None
            else "not measurable yet"
        )
    )
    st.dataframe(
        pd.DataFrame(
            {
                "Day": [f.day.isoformat() for f in ahead],
                "Forecast": [format_minor(f.forecast_rub_minor, SETTLEMENT_CURRENCY) for f in ahead],
                "Backtest error (MAE)": [
                    format_minor(f.backtest_mae_rub_minor, SETTLEMENT_CURRENCY)
                    if f.backtest_mae_rub_minor is not None
                    else "—"
                    for f in ahead
                ],
            }
        ),
        hide_index=True,
    )

st.subheader("Loyalty leaderboard")
board = marts.leaderboard(root, channel)
if not board:
    st.info(NO_LEADERBOARD)
else:
    st.caption(f"Balances as of {board[0].as_of.isoformat()}")
    st.dataframe(
        pd.DataFrame(
            {
                "#": [e.position for e in board],
                "Viewer": [e.user_id for e in board],
                "Points": [e.points for e in board],
                "Rank": [e.rank for e in board],
                "Badges": [", ".join(e.badges) for e in board],
                "Hours watched": [round(e.watch_minutes / 60, 1) for e in board],
            }
        ),
        hide_index=True,
    )
