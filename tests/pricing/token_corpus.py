"""A varied corpus for token counts: prose, code, JSON, digits, repeats, CJK, Thai, emoji.

Each entry is ``(kind, text)``. The calibrated factors in ``pricing/tokens.py`` were
measured on it (``bench/calibrate_tokens.py``), and ``test_token_calibration.py`` checks
them against the official tokenizers (the estimate at or above the true count on at least
90% of it) and that the exact counts equal theirs.
"""

from __future__ import annotations

CORPUS: tuple[tuple[str, str], ...] = (
    ("prose", "What is machine learning?"),
    ("prose", "The quick brown fox jumps over the lazy dog. " * 6),
    (
        "prose",
        "Budgets keep agentic platforms honest: every call is estimated before it is made, "
        "held against the balance, and settled at what the provider really charged.",
    ),
    (
        "prose",
        "In 1969, Neil Armstrong and Buzz Aldrin landed on the Moon, while Michael Collins "
        "orbited above in the command module Columbia.",
    ),
    ("prose", "Le chat dort sur le canapé pendant que la pluie tombe doucement sur la ville."),
    ("prose", "Die Verfügbarkeit des Dienstes wird stündlich überprüft und protokolliert."),
    ("prose", "¿Dónde está la biblioteca? Necesito devolver tres libros antes del viernes."),
    ("prose", "Привет! Как дела? Сегодня хорошая погода для прогулки по парку."),
    (
        "prose",
        "Dear team,\n\nPlease find attached the quarterly report. Revenue grew 12% while "
        "costs fell.\n\nBest regards,\nAlex",
    ),
    (
        "code",
        "def fib(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n"
        "        a, b = b, a + b\n    return a\n",
    ),
    (
        "code",
        "function debounce(fn, ms) {\n  let t;\n  return (...args) => {\n    clearTimeout(t);\n"
        "    t = setTimeout(() => fn(...args), ms);\n  };\n}\n",
    ),
    (
        "code",
        "SELECT user_id, SUM(amount_nano) FROM ledger_entries WHERE kind = 'usage' GROUP BY 1;",
    ),
    (
        "code",
        '#include <stdio.h>\nint main(void) {\n\tfor (int i = 0; i < 10; ++i) printf("%d\\n", i);'
        "\n\treturn 0;\n}\n",
    ),
    ("code", "    if (x != null && x.length > 0) { return x.map(v => v * 2).filter(Boolean); }"),
    (
        "json",
        '{"provider": "openai", "model": "gpt-4o", "input_tokens": 1200, "output_tokens": 350, '
        '"cost": "0.00645", "tags": {"team": "search", "env": "prod"}}',
    ),
    (
        "json",
        '[{"id":1,"name":"alpha","ok":true},{"id":2,"name":"beta","ok":false},'
        '{"id":3,"name":"gamma","ok":null}]',
    ),
    ("json", '{"a":{"b":{"c":{"d":[1,2,3,4,5,6,7,8,9,10]}}}}'),
    ("digits", "3.14159265358979323846264338327950288419716939937510"),
    ("digits", "2026-12-04 16:10:00, 2026-12-05 08:30:00, 2026-12-06 23:59:59"),
    ("digits", "Order 48213 shipped 1200 units at $19.99 each on 03/11/2026."),
    ("digits", "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25"),
    ("digits", "+1 (415) 555-0134, +44 20 7946 0958, +81 3-1234-5678"),
    ("digits", "1234567890" * 5),
    ("repeat", "a" * 200),
    ("repeat", "=" * 120),
    ("repeat", "ha" * 80),
    ("repeat", "!!!???..." * 10),
    ("cjk", "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。"),
    ("cjk", "今天天气很好，我们去公园散步吧。下午还要开会讨论预算。"),
    ("cjk", "東京は日本の首都であり、世界最大級の都市圏を形成しています。"),
    ("cjk", "こんにちは、お元気ですか？今日はとても暑いですね。"),
    ("cjk", "カタカナとひらがなと漢字が混ざった文章です。"),
    ("cjk", "안녕하세요. 오늘 회의는 오후 세 시에 시작합니다."),
    ("cjk", "한국어 토큰 수는 영어보다 많이 나오는 경향이 있습니다."),
    ("cjk", "预算控制：每次调用前估算成本，调用后按实际用量结算。"),
    ("thai", "สวัสดีครับ วันนี้อากาศดีมาก เราไปเดินเล่นที่สวนกันเถอะ"),
    ("thai", "การเรียนรู้ของเครื่องเป็นสาขาหนึ่งของปัญญาประดิษฐ์"),
    ("thai", "ประเทศไทยมีเจ็ดสิบเจ็ดจังหวัด และกรุงเทพมหานครเป็นเมืองหลวง"),
    ("emoji", "🎉🎉🎉 Launch day! 🚀 Thanks everyone 🙏❤️"),
    ("emoji", "😀😃😄😁😆😅😂🤣🥲☺️😊😇🙂🙃😉😌😍🥰😘"),
    ("emoji", "👍🏽👍🏿👨‍👩‍👧‍👦🏳️‍🌈🇫🇷🇯🇵"),
    ("mixed", "Total: ¥12,800 (約 $86) — 支払い済み ✅"),
    ("mixed", "Status 200 OK • 延迟 35ms • ความหน่วง 35 มิลลิวินาที"),
    ("mixed", "email: jane.doe+budget@example.com, url: https://example.com/a/b?c=1&d=2"),
    ("mixed", "SELECT * FROM 用户 WHERE 名前 = '田中';"),
    ("mixed", "C'est déjà 10h30 — on part à 11h ? 🙂"),
    ("mixed", "def 计算(x):\n    return x ** 2  # 平方"),
    ("mixed", "Ünïcödé ñörmälïzätïön tèst wïth äccënts ând ümlauts"),
)
