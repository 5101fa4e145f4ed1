"""The demo's consent texts for face recognition (seed_demo publishes them for the sandbox partner).

Shaped on 152-FZ for biometric personal data (art. 9 part 4 lists what a written consent names,
art. 11 governs biometrics): the subject, the operator (the management company) and its
address, the processor acting on the operator's instruction (the partner, art. 6 part 3), the
purpose, the data, the actions, the term and how to revoke; that refusing is no ground to refuse
service; and how the consent is given in the app. A real deployment has its lawyers write the
wording and publishes it per partner (and per company: the operator is named in it).
"""

VERSION = "2025-03"

RU_PARAGRAPHS = (  # paragraphs of one line each: the app wraps them
    'Согласие на обработку биометрических персональных данных (изображение лица) для прохода в дом',
    (
        'Я, пользователь мобильного приложения «Умный дом», вошедший в приложение под своей учётной записью '
        '(далее — субъект), свободно, своей волей и в своём интересе, конкретно, предметно, информированно и '
        'сознательно даю согласие на обработку моих биометрических персональных данных на следующих условиях.'
    ),
    '1. Оператор: {operator}, {operator_address} (управляющая организация дома, в котором я проживаю).',
    (
        '2. Лицо, осуществляющее обработку по поручению оператора (ч. 3 ст. 6 Федерального закона от '
        '27.07.2006 № 152-ФЗ «О персональных данных»): {partner} — оператор платформы умных домофонов и '
        'шлагбаумов, договор {agreement}. Оператор передаёт этому лицу только изображение лица в '
        'зашифрованном виде и псевдонимный идентификатор; фамилию, имя, телефон, адрес электронной почты и '
        'номер квартиры оно не получает.'
    ),
    (
        '3. Цель обработки: открытие дверей подъездов моего дома по распознаванию лица (биометрическая '
        'идентификация на домофонах дома, в котором я проживаю). Иных целей обработка не имеет.'
    ),
    (
        '4. Обрабатываемые данные: цифровое изображение моего лица (фотография, загруженная мной в '
        'приложении) и биометрический шаблон, вычисленный из него лицом, указанным в п. 2; псевдонимный '
        'идентификатор, по которому это лицо меня узнаёт.'
    ),
    (
        '5. Действия с данными: сбор, запись, систематизация, хранение, использование, передача '
        '(предоставление) лицу, указанному в п. 2, блокирование, удаление и уничтожение; обработка '
        'автоматизированная. Оператор не хранит фотографию после её передачи: до передачи она зашифрована '
        'ключом лица, указанного в п. 2, и оператор прочитать её не может.'
    ),
    (
        '6. Срок: согласие действует до даты, указанной в квитанции о согласии (не более {retention_days} '
        'дней с момента дачи), либо до его отзыва или окончания моего проживания в доме, если это наступит '
        'раньше. По окончании срока изображение и шаблон удаляются лицом, указанным в п. 2; удаление '
        'подтверждается оператору и видно в приложении.'
    ),
    (
        '7. Отзыв: я могу отозвать согласие в любой момент в приложении (раздел «Согласия», кнопка '
        '«Отозвать») или письменным заявлением оператору по адресу, указанному в п. 1. Отзыв действует '
        'немедленно: распознавание моего лица прекращается, лицу, указанному в п. 2, направляется требование '
        'удалить мои данные (ч. 2 ст. 9, ч. 5 ст. 21 152-ФЗ).'
    ),
    (
        '8. Отказ дать согласие или его отзыв не лишают меня доступа в дом: двери открываются ключом и из '
        'приложения, как и прежде.'
    ),
    (
        '9. Я вправе получать сведения об обработке моих персональных данных (ст. 14 152-ФЗ); выгрузка всех '
        'данных обо мне доступна в приложении («Мои данные»).'
    ),
    (
        'Согласие дано в форме электронного документа в мобильном приложении: нажатием кнопки «Согласен» '
        'после прочтения этого текста. Оператор хранит квитанцию о согласии с датой, сроком и хешем SHA-256 '
        'этого текста и выдаёт её мне в приложении.'
    ),
)

EN_PARAGRAPHS = (  # paragraphs of one line each: the app wraps them
    'Consent to the processing of biometric personal data (face image) for entering the building',
    (
        'I, a user of the "Smart Home" mobile app signed in with my own account (the data subject), freely, '
        'of my own will and in my own interest, specifically, knowingly and consciously consent to the '
        'processing of my biometric personal data on the following terms.'
    ),
    '1. Operator: {operator}, {operator_address} (the management company of the building I live in).',
    (
        "2. Processor acting on the operator's instruction (art. 6 part 3 of Federal Law No. 152-FZ of "
        '27.07.2006 "On Personal Data"): {partner}, which runs the smart intercom and barrier platform, '
        'agreement {agreement}. The operator gives it only the encrypted face image and a pseudonymous '
        'identifier; it does not receive my name, phone number, e-mail address or flat number.'
    ),
    (
        '3. Purpose: opening the entrance doors of my building by face recognition (biometric identification '
        'at the intercoms of the building I live in). The processing has no other purpose.'
    ),
    (
        '4. Data processed: the digital image of my face (the photo I upload in the app) and the biometric '
        'template the processor named in item 2 computes from it; the pseudonymous identifier by which the '
        'processor knows me.'
    ),
    (
        '5. Operations: collection, recording, organisation, storage, use, transfer (provision) to the '
        'processor named in item 2, blocking, erasure and destruction; processing is automated. The operator '
        "does not keep the photo after sending it: before it is sent it is encrypted to the processor's key, "
        'and the operator cannot read it.'
    ),
    (
        '6. Term: this consent lasts until the date stated in the consent receipt (at most {retention_days} '
        'days from when it is given), or until I revoke it or my residence in the building ends, whichever '
        'comes first. When it ends, the processor named in item 2 erases the image and the template; the '
        'erasure is confirmed to the operator and shown in the app.'
    ),
    (
        '7. Revocation: I may revoke this consent at any time in the app ("Consents", "Revoke") or by a '
        'written notice to the operator at the address in item 1. Revocation takes effect at once: my face is'
        ' no longer recognised, and the processor named in item 2 is required to erase my data (art. 9 part '
        '2, art. 21 part 5 of 152-FZ).'
    ),
    (
        '8. Refusing or revoking this consent does not take away my access to the building: doors open with a'
        ' key and from the app as before.'
    ),
    (
        '9. I have the right to information about the processing of my personal data (art. 14 of 152-FZ); an '
        'export of all data held about me is available in the app ("My data").'
    ),
    (
        'This consent is given as an electronic document in the mobile app, by pressing "I agree" after '
        'reading this text. The operator keeps a consent receipt with the date, the term and the SHA-256 hash'
        ' of this text, and makes it available to me in the app.'
    ),
)


def texts(*, operator: str, operator_address: str, partner: str, agreement: str, retention_days: int) -> dict:
    """The demo's texts by language, with the names filled in."""
    names = {"operator": operator, "operator_address": operator_address, "partner": partner,
             "agreement": agreement, "retention_days": retention_days}
    return {language: "\n\n".join(paragraphs).format(**names)
            for language, paragraphs in (("ru", RU_PARAGRAPHS), ("en", EN_PARAGRAPHS))}
