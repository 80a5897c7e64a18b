"""Real-looking guests and visitors: Chinese names and GB 11643-valid ID
numbers, different for every user and every run (pure stdlib, so both the
nameko venv and the Locust venv can import it)."""
import datetime
import random

from shared.idnumber import check_character, problem

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鑫宇浩然子涵欣怡梓轩雨泽思远嘉怡博文一诺晨曦"
# Real district codes (Shenyang, Hangzhou, Beijing, Guangdong) for the first six digits.
AREAS = ("210102", "210103", "210104", "210105", "210106", "330102", "330105", "330106",
         "110101", "110105", "440106", "440304")


class People:
    """A source of distinct people; `seed` makes a run reproducible, and
    `stream` keeps two sources (e.g. two Locust users) from colliding."""

    def __init__(self, seed=None, stream=0):
        self.random = random.Random(seed)
        self.stream = stream
        self.count = 0

    def name(self):
        given = "".join(self.random.choice(GIVEN) for _ in range(self.random.choice((1, 2))))
        return self.random.choice(SURNAMES) + given

    def id_number(self):
        """A valid number, unique for 2,000 streams x 10,000 people: the birth date and the
        sequence digits encode the counter, the area is random."""
        self.count += 1
        n = (self.stream % 2000) * 10_000 + self.count % 10_000
        born = datetime.date(1950, 1, 1) + datetime.timedelta(days=n // 1000 % 20000)
        first17 = "%s%s%03d" % (self.random.choice(AREAS), born.strftime("%Y%m%d"), n % 1000)
        number = first17 + check_character(first17)
        assert problem(number) is None, number
        return number

    def person(self):
        return {"name": self.name(), "id_number": self.id_number()}

    def phone(self):
        return "1%d%09d" % (self.random.choice((3, 5, 7, 8, 9)), self.random.randrange(10 ** 9))
